"""The console and the multi-factor rule: refusals say why and link to "Confirm it's you".

Through the whole stack (session → ``AuthenticationContextMiddleware`` → view → service): with
``MFA_REQUIRED`` on, a person signed in with a password is refused a rejection, a PII reveal and an
export with the service's message and a link to ``console-step-up`` coming back to the page; nothing is
written. Pages say before the click that a second factor will be asked for.
"""
from __future__ import annotations

import time
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import override_settings
from django.urls import path, reverse
from django.utils.html import escape

from access.authn import session_store
from audit.models import ExportJob
from governance.models import PromotionRequest
from tests.access.test_step_up import everything
from tests.console.helpers import client_for, messages_of, pii_entry, seed_ledger
from tests.personas import People
from web.console.base import step_up_url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]

LINK = "Confirm it's you"


@pytest.fixture
def mfa_on(settings: Any) -> None:
    settings.MFA_REQUIRED = True
    settings.MFA_MAX_AGE_SECONDS = 900
    settings.MLFLOW_EVIDENCE_REFRESH = False


def with_mfa(client: Any) -> Any:
    session = client.session
    session_store(session, method="oidc", auth_time=int(time.time()), amr=["pwd", "otp"])
    session.save()
    return client


def _ok(request: Any) -> HttpResponse:
    return HttpResponse("")


class WithoutStepUp:
    urlpatterns = [path("login/", _ok, name="console-login")]


class WithStepUp:
    urlpatterns = [path("login/", _ok, name="console-login"), path("sso/step-up/", _ok, name="console-step-up")]


def test_the_link_goes_to_step_up_and_back_or_to_the_sign_in_page_without_sso() -> None:
    with override_settings(ROOT_URLCONF=WithStepUp):
        assert step_up_url("/console/requests/7/?tab=a") == "/sso/step-up/?next=%2Fconsole%2Frequests%2F7%2F%3Ftab%3Da"
    with override_settings(ROOT_URLCONF=WithoutStepUp):
        assert step_up_url("/console/requests/7/") == "/login/?next=%2Fconsole%2Frequests%2F7%2F"


@pytest.mark.usefixtures("mfa_on")
def test_a_password_session_is_refused_a_rejection_with_why_and_the_way_out(
    people: People, pending: PromotionRequest
) -> None:
    # given
    client = client_for(people.approver)
    before = everything()

    # when
    response = client.post(reverse("console-request-action", args=[pending.pk, "reject"]),
                           {"comment": "precision regressed"}, follow=True)

    # then
    page = reverse("console-request", args=[pending.pk])
    assert response.redirect_chain[-1][0] == page
    [message] = messages_of(response)
    assert "rejecting a promotion needs a multi-factor sign-in" in message and "with a password" in message
    html = response.content.decode()
    assert f'<a href="{escape(step_up_url(page))}">{LINK}</a>' in html
    assert everything() == before
    assert PromotionRequest.objects.get(pk=pending.pk).state == "pending"


@pytest.mark.usefixtures("mfa_on")
def test_the_request_page_says_before_the_click_that_a_second_factor_is_needed(
    people: People, pending: PromotionRequest
) -> None:
    page = reverse("console-request", args=[pending.pk])
    html = client_for(people.approver).get(page).content.decode()
    assert "Approving or rejecting needs a recent sign-in with your second factor" in html
    assert "Confirm it's you now" in html
    # ... and not once the session has a fresh one
    assert "needs a recent sign-in" not in with_mfa(client_for(people.approver)).get(page).content.decode()


def test_without_mfa_required_nothing_is_said_or_refused(people: People, pending: PromotionRequest,
                                                        settings: Any) -> None:
    settings.MLFLOW_EVIDENCE_REFRESH = False
    client = client_for(people.approver)
    page = reverse("console-request", args=[pending.pk])
    assert "needs a recent sign-in" not in client.get(page).content.decode()
    client.post(reverse("console-request-action", args=[pending.pk, "reject"]), {"comment": "no"})
    assert PromotionRequest.objects.get(pk=pending.pk).state == "rejected"


@pytest.mark.usefixtures("mfa_on")
def test_a_fresh_second_factor_in_the_session_lets_the_rejection_through(
    people: People, pending: PromotionRequest
) -> None:
    client = with_mfa(client_for(people.approver))
    client.post(reverse("console-request-action", args=[pending.pk, "reject"]), {"comment": "no"})
    assert PromotionRequest.objects.get(pk=pending.pk).state == "rejected"


@pytest.mark.usefixtures("mfa_on")
def test_a_reveal_is_refused_to_a_password_session_and_nothing_is_read_or_written(people: People) -> None:
    seed_ledger(2)
    seq = pii_entry().seq
    before = everything()
    client = client_for(people.infosec)
    refused = client.post(reverse("console-entry-reveal", args=[seq]), {"reason": "SAR-7"})
    page = reverse("console-entry", args=[seq])
    assert refused.status_code == 302 and refused["Location"] == page
    # Nothing read or written by the refused reveal (the page shown next records its own ledger.accessed read).
    assert everything() == before
    response = client.get(page)
    [message] = messages_of(response)
    assert "revealing personal data needs a multi-factor sign-in" in message
    html = response.content.decode()
    assert f'<a href="{escape(step_up_url(page))}">{LINK}</a>' in html
    assert "pat@example.com" not in html


@pytest.mark.usefixtures("mfa_on")
def test_an_export_is_refused_to_a_password_session_with_the_link(people: People) -> None:
    before = everything()
    response = client_for(people.auditor).post(reverse("console-exports"), {"format": "csv"})
    assert response.status_code == 403
    html = response.content.decode()
    assert "exporting the ledger needs a multi-factor sign-in" in html
    assert LINK in html
    assert "Exporting the ledger needs a recent sign-in with your second factor" in html
    assert not ExportJob.objects.exists()
    assert everything() == before


@pytest.mark.usefixtures("mfa_on")
def test_the_environments_page_says_it_to_infosec_before_a_policy_change(people: People) -> None:
    html = client_for(people.infosec).get(reverse("console-environments")).content.decode()
    assert "Changing policies, environments or freeze windows needs a recent sign-in" in html
    assert "needs a recent sign-in" not in with_mfa(client_for(people.infosec)).get(
        reverse("console-environments")).content.decode()


@pytest.mark.usefixtures("mfa_on")
def test_a_policy_change_refused_in_the_console_says_why_and_links_to_step_up(people: Any) -> None:
    before = everything()
    response = client_for(people.infosec).post(
        reverse("console-environment-policy", args=["staging"]),
        {"rules": '{"approvals": [{"group": "approver", "count": 2}], "gates": []}'}, follow=True)
    [message] = messages_of(response)
    assert "changing a promotion policy needs a multi-factor sign-in" in message
    assert LINK in response.content.decode()
    assert everything() == before
