"""An approver signs in through the real OpenID provider's pages in a browser, gets the approver role from
the groups claim, is refused an approval without a second factor, steps up with the one-time code and
approves.

The provider is tests/idp (``oidc_provider``); its pages are its own (username/password, then the
one-time code when the step-up asks for the two-factor acr). adam has no local account: the first
sign-in creates it, with the role of his ``ml-approvers`` group.
"""
from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User

from access import roles
from governance.models import PromotionRequest
from tests.browser.helpers import shot
from tests.browser.test_approver import COMMENT, open_and_submit, staging_request
from tests.governance.helpers import FakeRegistry, event_types
from tests.identity_provider import IDP_PASSWORD, OTP, IdentityProvider
from tests.personas import make_user

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("celery_eager")]


def idp_password_page(page: Any, username: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(IDP_PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_an_sso_approver_steps_up_with_the_second_factor_to_approve(
    live_url: str, page: Any, fake_registry: FakeRegistry, settings: Any, oidc_provider: IdentityProvider,
) -> None:
    # given the console connected to the provider, with the multi-factor rule on, and a request to decide
    for name, value in oidc_provider.settings().items():
        setattr(settings, name, value)
    settings.MFA_REQUIRED = True
    request = staging_request(make_user("olivia", roles.MODEL_OWNER))
    detail = f"{live_url}/console/approvals/requests/{request.pk}/"

    # when adam signs in through the provider with his password only
    page.goto(f"{live_url}/console/login/")
    page.get_by_role("link", name="Sign in with Test IdP").click()
    page.wait_for_url(f"{oidc_provider.issuer}/**")
    shot(page, "sso-idp-login")
    idp_password_page(page, "adam")
    page.wait_for_url(f"{live_url}/console/")
    adam = User.objects.get(username="adam")
    assert set(adam.groups.values_list("name", flat=True)) == {roles.APPROVER}

    # then he is refused the approval: it needs a second factor, and nothing is recorded
    page.goto(detail)
    open_and_submit(page, "Approve", "approve", COMMENT)
    refusal = " ".join(page.locator("ul.messages li, .msg.error, [role=alert]").all_inner_texts())
    assert "multi-factor" in refusal, refusal
    shot(page, "sso-approval-refused")
    assert "promotion.approval_given" not in event_types(request)

    # when he steps up (the refusal's link when the console offers one, else the step-up page itself)
    link = page.get_by_role("link", name=re.compile("confirm|step|sign in again", re.I))
    if link.count():
        link.first.click()
    else:
        page.goto(f"{live_url}/console/step-up/?next=/console/approvals/requests/{request.pk}/")
    page.wait_for_url(f"{oidc_provider.issuer}/**")
    idp_password_page(page, "adam")
    page.get_by_label("One-time code").fill(OTP)
    shot(page, "sso-idp-otp")
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(detail)
    assert "You confirmed it's you with a second factor." in page.locator("ul.messages li").all_inner_texts()

    # then the approval goes through
    open_and_submit(page, "Approve", "approve", COMMENT)
    assert page.locator("ul.messages li").all_inner_texts() == ["Your approval is recorded. All rules met — deploying."]
    shot(page, "sso-approval-recorded")
    assert "auth.step_up" in _user_event_types(adam)
    assert "promotion.approval_given" in event_types(request)
    request.refresh_from_db()
    assert request.state in (PromotionRequest.State.APPROVED, PromotionRequest.State.DEPLOYED)


def _user_event_types(user: User) -> list[str]:
    from audit import ledger
    from audit.models import Entry

    ledger.integrate()
    return list(Entry.objects.filter(subject_type="user", subject_id=str(user.pk)).values_list("event_type",
                                                                                              flat=True))
