"""Admin actions: the ones the console does are gone, role changes are InfoSec's, through the service.

The attacks: ``break_glass`` and ``request_promotion`` from the admin skipped the visibility
and path checks (a version went to production without staging); every other write the
console does (approvals, grants, classification, tokens, reveals) was a second door. Role
changes, which the console has no page for, stay: InfoSec only, never on oneself.
"""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import User

from access.admin import DatasetAdmin, DatasetFieldAdmin
from access.models import AccessRequest, ApiToken, Dataset, Grant, ReviewCampaign, ReviewItem, ServiceAccount
from access.roles import AUDITOR, BREAK_GLASS, MODEL_OWNER
from access.services.service_accounts import service_account_create
from audit.ledger import integrate
from audit.models import Entry, PendingEntry
from governance.admin import LineageAdmin, ModelVersionAdmin
from governance.models import BreakGlassReview, ComplianceViolation, Environment, PromotionRequest
from tests.admin.helpers import Cast, World, client_for, everything

pytestmark = pytest.mark.django_db


def _first(model: Any) -> int:
    return int(model.objects.order_by("pk").values_list("pk", flat=True)[0])


def _removed_actions(world: World) -> list[tuple[str, str, int, dict[str, Any]]]:
    """(changelist, action, selected pk, confirmed form) of every action the admin used to offer."""
    production = Environment.objects.get(name="production").pk
    text = {"text": "ok", "reason": "ok", "comment": "ok"}
    return [
        ("governance/modelversion", "request_promotion", world.version.pk,
         {"environment": production, "strategy": "full", "reason": "skip staging"}),
        ("governance/modelversion", "break_glass", world.version.pk,
         {"environment": production, "justification": "INC-1"}),
        *[("governance/promotionrequest", name, world.staging_request.pk, text)
          for name in ("approve", "reject", "withdraw", "rollback")],
        ("governance/breakglassreview", "approve_review", _first(BreakGlassReview), text),
        ("governance/complianceviolation", "acknowledge", _first(ComplianceViolation), text),
        ("access/dataset", "classify", world.res.pci.pk,
         {"level": "public", "pii_categories": [], "reason": "declassify"}),
        ("access/dataset", "classify_field", world.res.pci.pk,
         {"field_name": "pan", "level": "public", "pii_categories": [], "reason": "declassify"}),
        ("access/datasetfield", "reclassify", world.res.pci.fields.get().pk,
         {"level": "public", "pii_categories": [], "reason": "declassify"}),
        ("access/grant", "revoke", _first(Grant), text),
        *[("access/accessrequest", name, _first(AccessRequest), text) for name in ("approve", "reject", "withdraw")],
        ("access/reviewcampaign", "close", _first(ReviewCampaign), {"sure": "on"}),
        *[("access/reviewitem", name, _first(ReviewItem), text) for name in ("certify", "revoke")],
        ("access/serviceaccount", "issue_token", _first(ServiceAccount),
         {"name": "x", "scopes": ["events:write"], "expires_in_days": 30}),
        ("access/apitoken", "revoke", _first(ApiToken), text),
        ("audit/entry", "reveal_personal_data", _first(Entry), {"reason": "curious"}),
    ]


def test_the_actions_the_console_does_are_not_admin_actions_even_for_infosec(cast: Cast, world: World) -> None:
    # InfoSec with every role the services would want (break-glass, model owner): still nothing runs here
    infosec = cast.people.infosec
    infosec.groups.add(*User.groups.field.related_model.objects.filter(name__in=[BREAK_GLASS, MODEL_OWNER]))
    client = client_for(infosec)
    before = everything()
    for page, action, pk, form in _removed_actions(world):
        response = client.post(f"/admin/{page}/", {"action": action, ACTION_CHECKBOX_NAME: [str(pk)],
                                                   "confirm": "yes", **form}, follow=True)
        # the plain list again (no action ran, no intermediate form), and no error
        assert response.status_code == 200, (page, action)
        assert response.templates[0].name == "admin/change_list.html", (page, action)
    assert everything() == before


def test_break_glass_from_the_admin_writes_nothing(cast: Cast, world: World) -> None:
    production = Environment.objects.get(name="production")
    form = {"action": "break_glass", ACTION_CHECKBOX_NAME: [str(world.version.pk)], "confirm": "yes",
            "environment": production.pk, "justification": "INC-1: losses rising"}
    cast.people.infosec.groups.add(User.groups.field.related_model.objects.get(name=BREAK_GLASS))
    before = everything()
    # the break-glass member cannot open the admin at all...
    assert client_for(cast.people.breakglass).post("/admin/governance/modelversion/", form).status_code == 302
    # ...and InfoSec holding break-glass finds no such action
    client_for(cast.people.infosec).post("/admin/governance/modelversion/", form)
    assert everything() == before
    assert not PromotionRequest.objects.filter(version=world.version, environment=production).exists()


def test_a_version_cannot_go_to_production_without_staging_through_the_admin(cast: Cast, world: World) -> None:
    production = Environment.objects.get(name="production")
    form = {"action": "request_promotion", ACTION_CHECKBOX_NAME: [str(world.version.pk)], "confirm": "yes",
            "environment": production.pk, "strategy": "full", "reason": "straight to production"}
    before = everything()
    for user in (cast.people.owner, cast.people.infosec, cast.superuser, cast.superuser_auditor):
        client_for(user).post("/admin/governance/modelversion/", form)
    assert everything() == before
    assert not PromotionRequest.objects.filter(version=world.version, environment=production).exists()


# --- role changes: InfoSec only, with a reason, never on oneself ----------------------------------------------


def _role_action(client: Any, action: str, target: User, **form: Any) -> Any:
    return client.post("/admin/auth/user/", {"action": action, ACTION_CHECKBOX_NAME: [str(target.pk)], **form},
                       follow=True)


def test_infosec_gives_a_role_with_a_reason_through_the_service(cast: Cast, world: World) -> None:
    officer, target = cast.people.infosec, cast.people.outsider
    client = client_for(officer)
    # first the reason is asked for, and nothing is written
    before = everything()
    page = _role_action(client, "add_role_auditor", target)
    assert 'name="reason"' in page.content.decode()
    assert everything() == before
    # with it, the role is given and recorded with the acting InfoSec and the reason
    done = _role_action(client, "add_role_auditor", target, confirm="yes", reason="SEC-12 quarterly audit")
    assert "Give role auditor: 1 done" in done.content.decode()
    assert target.groups.filter(name=AUDITOR).exists()
    integrate()
    entry = Entry.objects.get(event_type="auth.role_added")
    assert (entry.actor_type, entry.actor_id, entry.subject_id) == ("user", str(officer.pk), str(target.pk))
    assert entry.payload == {"role": AUDITOR, "reason": "SEC-12 quarterly audit"}


def test_infosec_removes_a_role_through_the_service(cast: Cast, world: World) -> None:
    target = cast.people.approver
    _role_action(client_for(cast.people.infosec), "remove_role_approver", target, confirm="yes", reason="left team")
    assert not target.groups.exists()
    integrate()
    assert Entry.objects.get(event_type="auth.role_removed").payload == {"role": "approver", "reason": "left team"}


def test_infosec_cannot_change_their_own_roles(cast: Cast, world: World) -> None:
    officer = cast.people.infosec
    before = everything()
    response = _role_action(client_for(officer), "add_role_break_glass", officer, confirm="yes", reason="mine")
    assert "nobody changes their own roles" in response.content.decode()
    response = _role_action(client_for(officer), "remove_role_infosec", officer, confirm="yes", reason="mine")
    assert "nobody changes their own roles" in response.content.decode()
    assert everything() == before


def test_infosec_cannot_give_their_own_service_account_a_role(cast: Cast, world: World) -> None:
    officer = cast.people.infosec
    account = service_account_create(actor=officer, name="ines-bot", description="")
    before = everything()
    response = _role_action(client_for(officer), "add_role_break_glass", account.user, confirm="yes", reason="bot")
    assert "nobody changes their own roles" in response.content.decode()
    assert everything() == before


@pytest.mark.parametrize("persona", ["auditor", "superuser_auditor"])
def test_an_auditor_cannot_change_roles(cast: Cast, world: World, persona: str) -> None:
    before = everything()
    response = _role_action(client_for(cast[persona]), "add_role_infosec", cast.people.outsider, confirm="yes",
                            reason="let me in")
    assert response.status_code == 200 and response.templates[0].name == "admin/change_list.html"
    assert everything() == before


@pytest.mark.parametrize("persona", ["superuser", "staff", "owner", "approver", "steward", "outsider"])
def test_no_other_account_changes_roles(cast: Cast, world: World, persona: str) -> None:
    before = everything()
    response = client_for(cast[persona]).post("/admin/auth/user/", {
        "action": "add_role_infosec", ACTION_CHECKBOX_NAME: [str(cast[persona].pk)], "confirm": "yes",
        "reason": "promote myself"})
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert everything() == before


def test_an_unknown_role_action_does_nothing(cast: Cast, world: World) -> None:
    before = everything()
    response = _role_action(client_for(cast.people.infosec), "add_role_root", cast.people.outsider, confirm="yes",
                            reason="x")
    assert "No action selected" in response.content.decode()
    assert everything() == before


def test_the_user_admin_does_not_edit_accounts(cast: Cast, world: World) -> None:
    # groups, flags, names and passwords: none through the admin (a role change is the role action)
    client = client_for(cast.people.infosec)
    target = cast.people.outsider
    infosec_group = User.groups.field.related_model.objects.get(name="infosec")
    before = everything()
    response = client.post(f"/admin/auth/user/{target.pk}/change/", {
        "username": "renamed", "is_active": "on", "is_superuser": "on", "groups": [str(infosec_group.pk)]})
    assert response.status_code == 403
    assert client.post("/admin/auth/user/add/", {"username": "ghost", "password1": "Xx-12345678",
                                                  "password2": "Xx-12345678"}).status_code == 403
    assert everything() == before
    assert PendingEntry.objects.filter(event_type__startswith="auth.").count() == 0


# --- rows go through the visibility selectors --------------------------------------------------------------


def test_the_admin_querysets_are_the_selectors_rows(cast: Cast, world: World) -> None:
    # Only InfoSec and auditors get in, and they see everything; if the door were ever widened, a model
    # owner would still see only what the API shows them: not the PCI dataset nor its field or lineage.
    from django.contrib import admin

    owner_of_nothing = cast.people.requester
    datasets = admin.site._registry[Dataset]
    assert isinstance(datasets, DatasetAdmin)
    assert world.res.pci not in datasets.visible_to(owner_of_nothing)
    assert not admin.site._registry[world.res.pci.fields.model].visible_to(owner_of_nothing).exists()
    assert isinstance(admin.site._registry[world.res.pci.fields.model], DatasetFieldAdmin)
    lineage = admin.site._registry[world.res.pci.lineage.model]
    assert isinstance(lineage, LineageAdmin) and not lineage.visible_to(owner_of_nothing).exists()
    assert not admin.site._registry[ComplianceViolation].visible_to(owner_of_nothing).exists()
    versions = admin.site._registry[world.version.__class__]
    assert isinstance(versions, ModelVersionAdmin) and not versions.visible_to(cast.people.outsider).exists()
    assert not admin.site._registry[ApiToken].visible_to(cast.people.owner).exists()
    assert admin.site._registry[ApiToken].visible_to(cast.people.requester).count() == 1  # their own account's


@pytest.mark.parametrize("persona", ["auditor", "superuser", "approver"])
def test_role_change_itself_refuses_anyone_but_infosec(cast: Cast, world: World, persona: str) -> None:
    # The admin offers the action to InfoSec only; the function it calls refuses the others too.
    from access.admin import role_change
    from access.errors import NotPermitted

    before = everything()
    with pytest.raises(NotPermitted, match="only InfoSec"):
        role_change(actor=cast[persona], target=cast.people.outsider, role="infosec", add=True, reason="x")
    assert everything() == before
