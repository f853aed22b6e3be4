"""The API and the multi-factor rule: a refusal is a 403 problem ``step_up_required`` that says why.

With ``MFA_REQUIRED`` on, a session signed in with a password, and any API token (which carries no
sign-in at all), are refused the sensitive actions with nothing written; a session whose sign-in used a
second factor recently is let through. The session is the server's: what a client sends (a forged
session cookie, a cookie named like the session's key) cannot make a sign-in multi-factor.
"""
from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group

from access import roles
from access.authn import SESSION_KEY, session_store
from access.errors import StepUpRequired
from audit import errors as audit_errors
from governance.models import PromotionRequest
from tests.access.test_step_up import everything
from tests.api.helpers import problem_of
from web.api.problems import exception_handler

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fake_registry", "celery_eager")]

URL = "/api/v1/promotions"


@pytest.fixture(autouse=True)
def mfa_on(settings: Any) -> None:
    settings.MFA_REQUIRED = True
    settings.MFA_MAX_AGE_SECONDS = 900
    settings.MLFLOW_EVIDENCE_REFRESH = False


def with_mfa(client: Any, *, seconds_ago: int = 5) -> Any:
    """The session of ``client`` as the OIDC callback stores a sign-in with a second factor."""
    session = client.session
    session_store(session, method="oidc", auth_time=int(time.time()) - seconds_ago, amr=["pwd", "otp"], acr="")
    session.save()
    return client


@pytest.mark.parametrize("exc", [StepUpRequired("approving a promotion needs a multi-factor sign-in"),
                                 audit_errors.StepUpRequired("exporting the ledger needs a multi-factor sign-in")])
def test_both_step_up_refusals_map_to_403_step_up_required(exc: Exception) -> None:
    response = exception_handler(exc, {})
    assert response is not None and response.status_code == 403
    assert response.data["code"] == "step_up_required"
    assert response.data["type"] == "urn:mlgov:problem:step_up_required"
    assert response.data["detail"] == str(exc)


def test_a_password_session_is_refused_a_rejection_with_the_reason(as_user, pending, approver) -> None:
    before = everything()
    response = as_user(approver).post(f"{URL}/{pending.pk}/reject", {"comment": "no"}, format="json")
    assert response.status_code == 403
    body = problem_of(response)
    assert body["code"] == "step_up_required"
    assert "rejecting a promotion needs a multi-factor sign-in" in body["detail"]
    assert "with a password" in body["detail"]
    assert everything() == before


def test_a_session_with_a_recent_second_factor_may_reject(as_user, pending, approver) -> None:
    response = with_mfa(as_user(approver)).post(f"{URL}/{pending.pk}/reject", {"comment": "no"}, format="json")
    assert response.status_code == 200, response.content
    assert PromotionRequest.objects.get(pk=pending.pk).state == "rejected"


def test_a_second_factor_too_long_ago_is_refused(as_user, pending, approver) -> None:
    before = everything()
    client = with_mfa(as_user(approver), seconds_ago=3600)
    response = client.post(f"{URL}/{pending.pk}/approve", {"comment": "ok"}, format="json")
    assert response.status_code == 403 and problem_of(response)["code"] == "step_up_required"
    assert "60 minutes ago" in problem_of(response)["detail"]
    assert everything() == before


def test_an_api_token_is_refused_an_export_even_with_the_auditor_role(token_for) -> None:
    client = token_for(["exports:read"])
    client.service_account.user.groups.add(Group.objects.get(name=roles.AUDITOR))
    before = everything()
    response = client.post("/api/v1/exports", {"format": "csv"}, format="json")
    assert response.status_code == 403
    body = problem_of(response)
    assert body["code"] == "step_up_required"
    assert "cannot be done with an API token" in body["detail"]
    assert everything() == before


def test_a_cookie_cannot_make_a_session_multi_factor(as_user, client, pending, approver) -> None:
    """The sign-in lives in the server-side session store; the browser holds only the session's key."""
    api = as_user(approver)
    # 1. A cookie named like the session's key, beside a real (password) session: ignored.
    forged = base64.b64encode(json.dumps({"method": "oidc", "mfa": True, "auth_time": int(time.time()),
                                          "amr": ["otp"]}).encode()).decode()
    api.cookies[SESSION_KEY] = forged
    before = everything()
    response = api.post(f"{URL}/{pending.pk}/reject", {"comment": "no"}, format="json")
    assert response.status_code == 403 and problem_of(response)["code"] == "step_up_required"
    # 2. A session cookie whose value is a made-up payload rather than a stored key: no session at all.
    api.cookies[django_settings.SESSION_COOKIE_NAME] = forged
    response = api.post(f"{URL}/{pending.pk}/reject", {"comment": "no"}, format="json")
    assert response.status_code in (401, 403) and problem_of(response)["code"] != "step_up_required"
    assert everything() == before
