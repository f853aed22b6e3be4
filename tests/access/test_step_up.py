"""MFA where it matters: every sensitive action's service refuses a person without a recent second factor.

With ``MFA_REQUIRED`` on, each service below (approvals and rejections, break-glass and its review, policy
and environment-rule changes and their change requests, grants and approvals on restricted data, PII
reveal, exports) is called by a person whose sign-in is, in turn: none at all (what a command, a task or
an API token carries), a password, an OIDC sign-in without a second factor, a second factor older than
``MFA_MAX_AGE_SECONDS``. Each is the attack: refused with ``step_up_required``, a message that says why,
and nothing written (every governance, access and export row, and the ledger, unchanged). A fresh second
factor lets the same call through, and with ``MFA_REQUIRED`` off (the default) nothing changes.

The sign-in is bound with ``audit.context.authentication_bound``, as ``AuthenticationContextMiddleware``
binds it from the session for a console request (tests/console/test_step_up_console.py goes through the
middleware and the session).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from access.models import AccessRequest, Grant
from access.services.access_requests import access_request_approve, access_request_create
from access.services.grants import grant_create
from audit import ledger, pii
from audit.context import Authentication, authentication_bound
from audit.export.scope import parse_scope
from audit.export.service import export_create
from audit.models import ExportJob
from governance.models import BreakGlassReview, GovernanceChangeRequest
from governance.services import break_glass, change_requests, environments, promotions
from tests.audit.pii.helpers import register_event
from tests.governance.helpers import TIGHTER, rules_state, snapshot
from tests.personas import People
from tests.promotions import Gov

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]

MAX_AGE = 900


def signed_in(kind: str) -> Authentication | None:
    """The sign-in a request carries: ``none`` (command, task, API token) ... ``mfa_fresh``."""
    now = int(time.time())
    return {
        "none": None,
        "password": Authentication(method="password", auth_time=now, mfa=False),
        "oidc_without_mfa": Authentication(method="oidc", auth_time=now, mfa=False, amr=("pwd",)),
        "mfa_too_old": Authentication(method="oidc", auth_time=now - MAX_AGE - 120, mfa=True, amr=("pwd", "otp")),
        "mfa_fresh": Authentication(method="oidc", auth_time=now - 5, mfa=True, amr=("pwd", "otp")),
    }[kind]


FRESH = signed_in("mfa_fresh")
REFUSED_SIGN_INS = ["none", "password", "oidc_without_mfa", "mfa_too_old"]
WHY = {
    "none": "cannot be done with an API token, a command or a task",
    "password": "signed in with a password",
    "oidc_without_mfa": "without a second factor",
    "mfa_too_old": "within the last 15 minutes",
}


def everything() -> dict[str, object]:
    """Every row an action here could write, and the ledger's size."""
    def rows(model: Any) -> list[dict[str, Any]]:
        return list(model.objects.order_by("pk").values())

    return {**snapshot(), **rules_state(), "grants": rows(Grant), "access_requests": rows(AccessRequest),
            "exports": rows(ExportJob)}


@dataclass
class Sensitive:
    """One sensitive action: ``prepare`` sets it up (as a person with a fresh second factor, where the
    setup is itself sensitive) and returns the call under test."""

    prepare: Callable[[People, Gov], Callable[[], object]]


def _approve(people: People, gov: Gov) -> Callable[[], object]:
    request = promotions.promotion_request(actor=people.owner, version=gov.v2, environment=gov.staging,
                                           reason="better recall")
    return lambda: promotions.promotion_approve(actor=people.approver, promotion=request, comment="checked")


def _reject(people: People, gov: Gov) -> Callable[[], object]:
    request = promotions.promotion_request(actor=people.owner, version=gov.v2, environment=gov.staging,
                                           reason="better recall")
    return lambda: promotions.promotion_reject(actor=people.approver, promotion=request, comment="no")


def _break_glass(people: People, gov: Gov) -> Callable[[], object]:
    return lambda: break_glass.promotion_break_glass(actor=people.breakglass, version=gov.v2,
                                                     environment=gov.staging, justification="INC-1: outage")


def _break_glass_review(people: People, gov: Gov) -> Callable[[], object]:
    with authentication_bound(FRESH):
        request = break_glass.promotion_break_glass(actor=people.breakglass, version=gov.v2,
                                                    environment=gov.staging, justification="INC-1: outage")
    review = BreakGlassReview.objects.get(request=request)
    return lambda: break_glass.break_glass_review_conclude(actor=people.approver, review=review,
                                                           outcome=break_glass.Outcome.JUSTIFIED, comment="fine")


def _policy_set(people: People, gov: Gov) -> Callable[[], object]:
    return lambda: environments.policy_set(actor=people.infosec, environment=gov.staging, rules=TIGHTER)


def _model_policy_set(people: People, gov: Gov) -> Callable[[], object]:
    return lambda: environments.policy_set(actor=people.infosec, environment=gov.staging, rules=TIGHTER,
                                           model=gov.model)


def _environment_update(people: People, gov: Gov) -> Callable[[], object]:
    return lambda: environments.environment_update(actor=people.infosec, environment=gov.staging,
                                                   max_data_classification="restricted")


def _environment_create(people: People, gov: Gov) -> Callable[[], object]:
    return lambda: environments.environment_create(actor=people.infosec, name="canary", order=1000,
                                                   mlflow_alias="canary", max_data_classification="internal")


def _environment_protect(people: People, gov: Gov) -> Callable[[], object]:
    return lambda: environments.environment_protect(actor=people.infosec, environment=gov.staging)


def _freeze(people: People, gov: Gov) -> Callable[[], object]:
    now = timezone.now()
    return lambda: environments.freeze_window_create(actor=people.infosec, environment=gov.staging, starts_at=now,
                                                     ends_at=now + timedelta(days=1), reason="year end")


def _change_request_create(people: People, gov: Gov) -> Callable[[], object]:
    return lambda: change_requests.change_request_create(
        actor=people.infosec, environment=gov.production, kind=GovernanceChangeRequest.Kind.POLICY_SET,
        change={"rules": TIGHTER})


def _change_request_approve(people: People, gov: Gov) -> Callable[[], object]:
    with authentication_bound(FRESH):
        proposal = change_requests.change_request_create(
            actor=people.infosec, environment=gov.production, kind=GovernanceChangeRequest.Kind.POLICY_SET,
            change={"rules": TIGHTER})
    return lambda: change_requests.change_request_approve(actor=people.infosec2, change_request=proposal,
                                                          comment="second pair of eyes")


def _grant_restricted(people: People, gov: Gov) -> Callable[[], object]:
    from access.models import Dataset
    restricted = Dataset.objects.get(name="kyc-documents")
    return lambda: grant_create(actor=people.infosec, principal=people.requester, resource=restricted,
                                permission="read_data", expires_at=timezone.now() + timedelta(days=7),
                                justification="KYC model features")


def _approve_restricted_request(people: People, gov: Gov) -> Callable[[], object]:
    from access.models import Dataset
    restricted = Dataset.objects.get(name="kyc-documents")
    asked = access_request_create(actor=people.requester, resource=restricted, permission="read_data",
                                  duration_days=7, justification="KYC model features")
    return lambda: access_request_approve(actor=people.infosec, access_request=asked, comment="ok")


def _reveal(people: People, gov: Gov) -> Callable[[], object]:
    register_event("900042")
    ledger.integrate()
    seq = ledger.Entry.objects.get(event_type="auth.user_registered", subject_id="900042").seq
    return lambda: pii.reveal(actor=people.infosec, seq=seq, reason="subject access request SAR-7")


def _export(people: People, gov: Gov) -> Callable[[], object]:
    return lambda: export_create(actor=people.auditor, scope=parse_scope(), fmt="csv", enqueue=False)


SENSITIVE = {
    "promotion_approve": _approve,
    "promotion_reject": _reject,
    "promotion_break_glass": _break_glass,
    "break_glass_review_conclude": _break_glass_review,
    "policy_set": _policy_set,
    "policy_set (a model's)": _model_policy_set,
    "environment_update": _environment_update,
    "environment_create": _environment_create,
    "environment_protect": _environment_protect,
    "freeze_window_create": _freeze,
    "change_request_create": _change_request_create,
    "change_request_approve": _change_request_approve,
    "grant_create (restricted)": _grant_restricted,
    "access_request_approve (restricted)": _approve_restricted_request,
    "pii.reveal": _reveal,
    "export_create": _export,
}


@pytest.fixture
def mfa_on(settings: Any) -> None:
    settings.MFA_REQUIRED = True
    settings.MFA_MAX_AGE_SECONDS = MAX_AGE
    settings.MLFLOW_EVIDENCE_REFRESH = False  # the approval's MLflow re-read is not what is tested here
    settings.POLICY_FLOOR = {}


@pytest.mark.usefixtures("mfa_on")
@pytest.mark.parametrize("sign_in", REFUSED_SIGN_INS)
@pytest.mark.parametrize("action", list(SENSITIVE))
def test_a_sensitive_action_without_a_recent_second_factor_is_refused_and_writes_nothing(
    action: str, sign_in: str, people: People, gov: Gov
) -> None:
    # given
    call = SENSITIVE[action](people, gov)
    before = everything()

    # when
    with authentication_bound(signed_in(sign_in)), pytest.raises(ValueError) as info:
        call()

    # then: refused with the code the console and the API turn into "confirm it's you", and why
    assert getattr(info.value, "code", None) == "step_up_required", f"{type(info.value).__name__}: {info.value}"
    assert WHY[sign_in] in str(info.value)
    assert "multi-factor" in str(info.value)
    assert everything() == before


@pytest.mark.usefixtures("mfa_on")
@pytest.mark.parametrize("action", list(SENSITIVE))
def test_a_fresh_second_factor_lets_the_action_through(action: str, people: People, gov: Gov) -> None:
    call = SENSITIVE[action](people, gov)
    before = everything()
    with authentication_bound(signed_in("mfa_fresh")):
        call()
    assert everything() != before


@pytest.mark.parametrize("action", list(SENSITIVE))
def test_with_mfa_required_off_nothing_changes(action: str, people: People, gov: Gov, settings: Any) -> None:
    settings.MFA_REQUIRED = False
    settings.MLFLOW_EVIDENCE_REFRESH = False
    settings.POLICY_FLOOR = {}
    call = SENSITIVE[action](people, gov)
    before = everything()
    call()  # no sign-in bound at all: a command, as before this rule
    assert everything() != before


@pytest.mark.usefixtures("mfa_on")
def test_a_grant_on_data_that_is_not_restricted_needs_no_second_factor(people: People, res: Any) -> None:
    with authentication_bound(signed_in("password")):
        made = grant_create(actor=people.owner, principal=people.requester, resource=res.internal,
                            permission="read_data", expires_at=timezone.now() + timedelta(days=7),
                            justification="features")
    assert made.pk is not None


@pytest.mark.usefixtures("mfa_on")
def test_a_role_refusal_comes_before_the_step_up(people: People, gov: Gov) -> None:
    """Someone who may never change a policy is told so, not sent to confirm it's them for nothing."""
    from governance.errors import NotPermitted

    with authentication_bound(signed_in("password")), pytest.raises(NotPermitted) as info:
        environments.policy_set(actor=people.outsider, environment=gov.staging, rules=TIGHTER)
    assert info.value.code != "step_up_required"


# --- commands acting for a person ------------------------------------------------------------------------


@pytest.mark.usefixtures("mfa_on")
def test_export_audit_for_a_person_is_refused_with_the_way_to_do_it(people: People, export: Any) -> None:
    """A shell carries no sign-in: ``--actor`` is refused with a message naming the console; the operator's
    own export (no ``--actor``) is not a person's action and still runs."""
    from django.core.management.base import CommandError

    from audit.models import ExportJob

    before = everything()
    with pytest.raises(CommandError) as info:
        export("--actor", people.auditor.username, "--format", "csv", name="refused.csv")
    message = str(info.value)
    assert "--actor audrey" in message and "multi-factor" in message and "console" in message
    assert "leave out --actor" in message
    assert everything() == before
    assert export("--format", "csv", name="operator.csv").exists()
    assert ExportJob.objects.get().created_by_id is None


@pytest.mark.usefixtures("mfa_on")
def test_a_sign_in_time_in_the_future_is_not_a_recent_second_factor(people: People, gov: Gov) -> None:
    """Otherwise it would stay "recent" for as long as it is ahead of the clock (a skewed or hostile
    provider clock); a minute of skew is tolerated."""
    call = _policy_set(people, gov)
    before = everything()
    ahead = Authentication(method="oidc", auth_time=int(time.time()) + 10 * MAX_AGE, mfa=True, amr=("otp",))
    with authentication_bound(ahead), pytest.raises(ValueError) as info:
        call()
    assert getattr(info.value, "code", None) == "step_up_required" and "in the future" in str(info.value)
    assert everything() == before
    slightly = Authentication(method="oidc", auth_time=int(time.time()) + 30, mfa=True, amr=("otp",))
    with authentication_bound(slightly):
        call()
    assert everything() != before
