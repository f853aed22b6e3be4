"""Grants: who may grant what for how long, guardian mirroring, revocation and expiry, service accounts."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from access.errors import AccessError, InvalidState, NotPermitted
from access.models import Grant, ServiceAccount
from access.selectors import grant_status, grants_expiring, grants_for, guardian_drift
from access.services.checks import check
from access.services.grants import grant_create, grant_revoke, grants_expire
from access.services.service_accounts import service_account_create
from access.tasks import expire_grants
from audit.models import PendingEntry
from config.celery import app
from tests.access.helpers import grant, ledger, ledger_entries, noon_in, soon, writes_nothing
from tests.catalog import Resources
from tests.personas import People, fresh

pytestmark = pytest.mark.django_db

# fixtures


@pytest.fixture(autouse=True)
def _celery_eager() -> object:
    saved = {k: app.conf[k] for k in ("task_always_eager", "task_eager_propagates")}
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    app.conf.update(saved)


# --- granting ------------------------------------------------------------------------------------------------


def test_the_owner_grants_an_internal_dataset_and_guardian_mirrors_it(people: People, res: Resources) -> None:
    # when
    until = noon_in(60)
    g = grant(people.owner, people.requester, res.internal, "read_data", until=until)
    # then: our check and guardian agree, and the ledger says who granted what until when
    assert check(people.requester, "read_data", res.internal).grant_id == g.pk
    assert fresh(people.requester).has_perm("access.read_data", res.internal)
    assert not fresh(people.requester).has_perm("access.train_on", res.internal)
    assert not fresh(people.steward).has_perm("access.read_data", res.internal)
    [entry] = ledger_entries("access.grant_created")
    assert (entry.actor_type, entry.actor_id) == ("user", str(people.owner.pk))
    assert (entry.subject_type, entry.subject_id) == ("dataset", "payments-internal")
    [payload] = ledger("access.grant_created")
    assert payload == {
        "grant_id": g.pk, "principal": f"user:{people.requester.pk}", "resource": "dataset:payments-internal",
        "permission": "read_data", "expires_at": f"{until:%Y-%m-%d}T12:00:00.000000Z",
        "justification": "fraud model features",
        "request_id": None,
    }
    assert payload["expires_at"].endswith("Z")
    assert guardian_drift() == []


def test_infosec_grants_restricted_data_for_at_most_30_days(people: People, res: Resources) -> None:
    g = grant(people.infosec, people.requester, res.restricted, days=29)
    assert check(people.requester, "read_data", res.restricted)
    with writes_nothing(), pytest.raises(AccessError, match="at most 30 days") as exc:
        grant(people.infosec, people.requester, res.restricted, days=31)
    assert exc.value.code == "duration_too_long"
    assert Grant.objects.get() == g


@pytest.mark.parametrize(
    ("resource", "ok_days", "max_days"),
    [("public", 364.9, 365), ("internal", 179.9, 180), ("confidential", 89.9, 90), ("model", 89.9, 90),
     ("production", 89.9, 90), ("dev", 89.9, 90)],
)
def test_maximum_duration_follows_the_level(
    people: People, res: Resources, resource: str, ok_days: float, max_days: int
) -> None:
    target = getattr(res, resource)
    permission = "deploy_to" if resource in ("model", "production", "dev") else "read_data"
    granter = people.infosec
    grant(granter, people.requester, target, permission, days=ok_days)
    with writes_nothing(), pytest.raises(AccessError, match=f"at most {max_days} days"):
        grant(granter, people.requester, target, permission, days=max_days + 0.01)


def test_a_model_without_classified_versions_counts_as_internal(people: People, res: Resources) -> None:
    res.model.versions.update(data_classification="")
    grant(people.owner, people.requester, res.model, "view_metadata", days=179)
    with pytest.raises(AccessError, match="at most 180 days"):
        grant(people.owner, people.requester, res.model, "view_metadata", days=181)


def test_the_model_owner_grants_on_their_model_and_guardian_uses_the_governance_label(
    people: People, res: Resources
) -> None:
    grant(people.owner, people.requester, res.model, "deploy_to", days=10)
    assert check(people.requester, "deploy_to", res.model)
    assert fresh(people.requester).has_perm("governance.deploy_to", res.model)
    # the same codename on an environment is another permission
    assert not fresh(people.requester).has_perm("governance.deploy_to", res.production)


def test_infosec_grants_an_environment_to_a_group(people: People, res: Resources) -> None:
    grant(people.infosec, people.team, res.production, "deploy_to", days=30)
    # the requester is in the team: allowed through the group, by both checks
    assert check(people.requester, "deploy_to", res.production)
    assert check(people.team, "deploy_to", res.production)
    assert fresh(people.requester).has_perm("governance.deploy_to", res.production)
    assert not check(people.owner, "deploy_to", res.production, record_denial=False)
    [payload] = ledger("access.grant_created")
    assert payload["principal"] == "group:fraud-team"
    assert payload["resource"] == "environment:production"


@pytest.mark.parametrize(
    ("who", "principal", "resource", "permission", "days", "error", "code"),
    [
        ("outsider", "requester", "internal", "read_data", 30, NotPermitted, "not_permitted"),
        ("steward", "requester", "internal", "read_data", 30, NotPermitted, "not_permitted"),
        ("requester", "steward", "internal", "read_data", 30, NotPermitted, "not_permitted"),
        ("owner", "requester", "restricted", "read_data", 10, NotPermitted, "not_permitted"),
        ("owner", "requester", "pci", "read_data", 10, NotPermitted, "not_permitted"),
        ("owner", "requester", "production", "deploy_to", 10, NotPermitted, "not_permitted"),
        ("owner", "owner", "internal", "read_data", 30, NotPermitted, "self_grant"),
        ("infosec", "infosec", "restricted", "read_data", 10, NotPermitted, "self_grant"),
        ("owner", "requester", "internal", "deploy_to", 30, AccessError, "invalid_permission"),
        ("owner", "requester", "model", "read_data", 30, AccessError, "invalid_permission"),
        ("owner", "requester", "internal", "read_data", -1, AccessError, "invalid_expiry"),
        ("owner", "requester", "confidential", "read_data", 91, AccessError, "duration_too_long"),
    ],
)
def test_refused_grants_write_nothing(
    people: People, res: Resources, who: str, principal: str, resource: str, permission: str, days: int,
    error: type[Exception], code: str,
) -> None:
    with writes_nothing(), pytest.raises(error) as exc:
        grant(getattr(people, who), getattr(people, principal), getattr(res, resource), permission, days=days)
    assert exc.value.code == code  # type: ignore[attr-defined]
    assert not fresh(getattr(people, principal)).has_perm(f"access.{permission}", res.internal)


def test_more_refusals_write_nothing(people: People, res: Resources) -> None:
    with writes_nothing():
        with pytest.raises(AccessError, match="justification is required"):
            grant(people.owner, people.requester, res.internal, justification="  ")
        with pytest.raises(NotPermitted, match="member of group fraud-team") as exc:
            grant(people.requester, people.team, res.internal)  # rita is in the team and owns nothing anyway
        assert exc.value.code == "self_grant"
        with pytest.raises(AccessError, match="timezone-aware"):
            grant_create(actor=people.owner, principal=people.requester, resource=res.internal,
                             permission="read_data", expires_at=timezone.now().replace(tzinfo=None) + timedelta(days=1),
                             justification="x")
        with pytest.raises(AccessError, match="is not a resource"):
            grant_create(actor=people.owner, principal=people.requester, resource=people.team,  # type: ignore[arg-type]
                             permission="read_data", expires_at=soon(), justification="x")
        people.steward.is_active = False
        people.steward.save()
        with pytest.raises(AccessError, match="inactive") as exc2:
            grant(people.owner, people.steward, res.internal)
        assert exc2.value.code == "inactive_principal"


def test_the_owner_loses_direct_granting_when_the_dataset_becomes_restricted(people: People, res: Resources) -> None:
    grant(people.owner, people.requester, res.confidential, days=30)
    res.confidential.effective_level = "restricted"
    res.confidential.save()
    with writes_nothing(), pytest.raises(NotPermitted, match="only InfoSec may grant"):
        grant(people.owner, people.steward, res.confidential, days=10)


# --- revocation ------------------------------------------------------------------------------------------


def test_revocation_is_effective_at_once(people: People, res: Resources) -> None:
    g = grant(people.owner, people.requester, res.confidential)
    user = fresh(people.requester)
    assert user.has_perm("access.read_data", res.confidential)
    assert check(user, "read_data", res.confidential)
    # when
    grant_revoke(actor=people.infosec, grant=g, reason="left the fraud team")
    # then: both checks deny right after, for a fresh user object
    assert not check(people.requester, "read_data", res.confidential, record_denial=False)
    assert not fresh(people.requester).has_perm("access.read_data", res.confidential)
    g.refresh_from_db()
    assert g.revoked_by == people.infosec and g.revoke_reason == "left the fraud team"
    assert grant_status(g) == "revoked"
    [entry] = ledger_entries("access.grant_revoked")
    assert (entry.actor_id, entry.subject_id) == (str(people.infosec.pk), "customers")
    [payload] = ledger("access.grant_revoked")
    assert payload == {"grant_id": g.pk, "principal": f"user:{people.requester.pk}", "resource": "dataset:customers",
                       "permission": "read_data", "reason": "left the fraud team"}
    assert guardian_drift() == []


@pytest.mark.parametrize(("who", "allowed"), [
    ("infosec", True), ("owner", True), ("granter", True), ("requester", False), ("outsider", False),
    ("steward", False), ("auditor", False),
])
def test_who_may_revoke(people: People, res: Resources, who: str, allowed: bool) -> None:
    # infosec2 granted it; olga owns the dataset
    g = grant(people.infosec2, people.requester, res.internal)
    actor = people.infosec2 if who == "granter" else getattr(people, who)
    if allowed:
        grant_revoke(actor=actor, grant=g, reason="no longer needed")
        assert not check(people.requester, "read_data", res.internal)
    else:
        with writes_nothing(), pytest.raises(NotPermitted):
            grant_revoke(actor=actor, grant=g, reason="no longer needed")
        assert check(people.requester, "read_data", res.internal)


def test_a_grant_cannot_be_revoked_twice_nor_after_it_lapsed(people: People, res: Resources) -> None:
    g = grant(people.owner, people.requester, res.internal)
    grant_revoke(actor=people.owner, grant=g, reason="done")
    with writes_nothing(), pytest.raises(InvalidState, match="already been revoked"):
        grant_revoke(actor=people.owner, grant=g, reason="again")
    lapsed = grant(people.owner, people.requester, res.internal)
    Grant.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with writes_nothing(), pytest.raises(InvalidState, match="already expired"):
        grant_revoke(actor=people.owner, grant=lapsed, reason="late")
    with pytest.raises(AccessError, match="reason is required"):
        grant_revoke(actor=people.owner, grant=grant(people.owner, people.requester, res.internal),
                         reason="")


# --- expiry ------------------------------------------------------------------------------------------------


def test_an_expired_grant_is_refused_one_second_after_expiry_and_leaves_guardian_on_expiry(
    people: People, res: Resources
) -> None:
    g = grant(people.owner, people.requester, res.confidential, days=1 / 24 / 60)  # one minute
    after = g.expires_at + timedelta(seconds=1)
    # before the expiry task ran: check() already refuses (it reads expires_at); guardian still has the row
    assert check(people.requester, "read_data", res.confidential, at=g.expires_at - timedelta(microseconds=1))
    assert not check(people.requester, "read_data", res.confidential, at=after, record_denial=False)
    assert fresh(people.requester).has_perm("access.read_data", res.confidential)
    assert grant_status(g, after) == "lapsed"
    assert guardian_drift(now=after) == []  # within the grace period: not drift
    # when: the expiry runs
    assert grants_expire(now=after) == 1
    # then
    assert not fresh(people.requester).has_perm("access.read_data", res.confidential)
    g.refresh_from_db()
    assert (g.revoked_at, g.revoked_by, g.revoke_reason) == (g.expires_at, None, "expired")
    assert grant_status(g) == "expired"
    assert grants_expire(now=after) == 0  # idempotent
    [entry] = ledger_entries("access.grant_expired")
    assert (entry.actor_type, entry.actor_id) == ("system", "access-expiry")
    [payload] = ledger("access.grant_expired")
    assert payload["grant_id"] == g.pk
    assert payload["expired_at"].startswith(g.expires_at.strftime("%Y-%m-%dT%H:%M:%S"))
    assert guardian_drift(now=after) == []


def test_the_expiry_task_closes_lapsed_grants_in_batches(people: People, res: Resources,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import access.tasks

    monkeypatch.setattr(access.tasks, "EXPIRE_BATCH", 2)
    lapsed = [grant(people.owner, people.requester, res.internal) for _ in range(5)]
    live = grant(people.owner, people.steward, res.internal)
    Grant.objects.filter(pk__in=[g.pk for g in lapsed]).update(expires_at=timezone.now() - timedelta(seconds=5))
    # when
    assert expire_grants.delay().get() == 5
    assert expire_grants.delay().get() == 0
    # then
    assert Grant.objects.filter(revoked_at__isnull=True).get() == live
    assert not fresh(people.requester).has_perm("access.read_data", res.internal)
    assert fresh(people.steward).has_perm("access.read_data", res.internal)
    assert len(ledger("access.grant_expired")) == 5


def test_expiry_and_review_tasks_are_on_the_beat_schedule(settings: object) -> None:
    schedule = {job["task"]: job["schedule"] for job in settings.CELERY_BEAT_SCHEDULE.values()}  # type: ignore[attr-defined]
    assert schedule["access.tasks.expire_grants"] <= timedelta(seconds=30)
    assert schedule["access.tasks.close_due_reviews"] <= timedelta(minutes=5)
    assert {"access.tasks.expire_grants", "access.tasks.close_due_reviews", "access.tasks.close_review"} <= set(
        app.tasks
    )
    for name in ("access.tasks.expire_grants", "access.tasks.close_due_reviews", "access.tasks.close_review"):
        task = app.tasks[name]
        assert task.time_limit and task.soft_time_limit and task.max_retries


# --- service accounts -------------------------------------------------------------------------------------


def test_a_model_owner_creates_a_service_account_that_cannot_sign_in(people: People, res: Resources) -> None:
    account = service_account_create(actor=people.requester, name="fraud-scorer", description="serving")
    backing = account.user
    assert backing.username == "svc-fraud-scorer" and backing.is_active and not backing.has_usable_password()
    assert account.owner == people.requester
    # the owner of a dataset may grant it to a service account
    grant(people.owner, backing, res.internal, "train_on")
    assert check(backing, "train_on", res.internal)
    assert fresh(backing).has_perm("access.train_on", res.internal)
    [entry] = ledger_entries("access.service_account_created")
    assert (entry.subject_type, entry.subject_id) == ("service_account", "fraud-scorer")
    assert ledger("access.service_account_created") == [
        {"name": "fraud-scorer", "owner": f"user:{people.requester.pk}", "description": "serving"}
    ]


def test_service_account_refusals_write_nothing(people: People, service_account: ServiceAccount) -> None:
    with writes_nothing():
        for who in (people.outsider, people.steward, people.auditor):
            with pytest.raises(NotPermitted):
                service_account_create(actor=who, name="other")
        with pytest.raises(AccessError, match="already exists") as exc:
            service_account_create(actor=people.infosec, name="fraud-pipeline")
        assert exc.value.code == "duplicate"
        with pytest.raises(AccessError, match="letters, digits") as exc:
            service_account_create(actor=people.infosec, name="no spaces")
        assert exc.value.code == "invalid_name"
    User.objects.create_user(username="svc-taken")
    with writes_nothing(), pytest.raises(AccessError, match="already exists"):
        service_account_create(actor=people.infosec, name="taken")


def test_a_disabled_service_account_gets_no_grant(people: People, res: Resources,
                                                  service_account: ServiceAccount) -> None:
    ServiceAccount.objects.filter(pk=service_account.pk).update(disabled_at=timezone.now())
    with writes_nothing(), pytest.raises(AccessError, match="disabled"):
        grant(people.owner, service_account.user, res.internal)


# --- selectors -------------------------------------------------------------------------------------------


def test_grant_selectors(people: People, res: Resources, django_assert_max_num_queries: object) -> None:
    mine = grant(people.owner, people.requester, res.internal, days=3)
    team = grant(people.infosec, people.team, res.confidential, days=20)
    other = grant(people.owner, people.steward, res.internal, days=100)
    ended = grant(people.owner, people.requester, res.public, days=5)
    grant_revoke(actor=people.owner, grant=ended, reason="done")

    with django_assert_max_num_queries(1):  # type: ignore[operator]
        found = grants_for(user=people.requester)
        labels = [(g.user.username if g.user else g.group.name, g.granted_by.username) for g in found]  # type: ignore[union-attr]
    assert {g.pk for g in found} == {mine.pk, team.pk}
    assert labels
    assert [g.pk for g in grants_for(user=people.requester, include_group_grants=False)] == [mine.pk]
    assert {g.pk for g in grants_for(user=people.requester, active=False)} == {mine.pk, team.pk, ended.pk}
    assert {g.pk for g in grants_for(resource=res.internal)} == {mine.pk, other.pk}
    assert [g.pk for g in grants_for(group=people.team)] == [team.pk]
    assert [g.pk for g in grants_expiring()] == [mine.pk]
    assert [g.pk for g in grants_expiring(within=timedelta(days=30))] == [mine.pk, team.pk]


def test_nothing_is_recorded_when_a_grant_is_refused(people: People, res: Resources) -> None:
    before = PendingEntry.objects.count()
    with pytest.raises(NotPermitted):
        grant(people.outsider, people.requester, res.internal)
    assert PendingEntry.objects.count() == before
