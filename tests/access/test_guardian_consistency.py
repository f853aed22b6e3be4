"""Our grants and guardian's object permissions stay in step: ``guardian_drift()`` is empty after every change."""
from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from guardian.models import UserObjectPermission
from guardian.shortcuts import assign_perm, remove_perm

from access.models import DatasetUserObjectPermission, Grant
from access.selectors import guardian_drift
from access.services.checks import check
from access.services.grants import grant_revoke, grants_expire
from access.services.reviews import review_campaign_close, review_campaign_start, review_item_decide
from tests.access.helpers import grant
from tests.audit.integration.helpers import race
from tests.catalog import Resources
from tests.personas import People, fresh, make_user

# fixtures (they need the ``db`` fixture; the concurrency test uses ``committing_db`` instead)


def test_in_step_after_create_revoke_and_expiry(people: People, res: Resources) -> None:
    assert guardian_drift() == []
    a = grant(people.owner, people.requester, res.internal)
    b = grant(people.infosec, people.team, res.production, "deploy_to")
    c = grant(people.owner, people.steward, res.model, "approve_promotion", days=1 / 24 / 60)
    assert guardian_drift() == []
    assert DatasetUserObjectPermission.objects.count() == 1
    grant_revoke(actor=people.owner, grant=a, reason="done")
    assert guardian_drift() == []
    after = c.expires_at + timedelta(seconds=1)
    assert grants_expire(now=after) == 1
    assert guardian_drift(now=after) == []
    grant_revoke(actor=people.infosec, grant=b, reason="done")
    assert guardian_drift(now=after) == []
    assert Grant.objects.filter(revoked_at__isnull=True).count() == 0


def test_in_step_after_a_review_closes(people: People, res: Resources) -> None:
    keep = grant(people.owner, people.requester, res.confidential)
    grant(people.owner, people.steward, res.confidential)
    grant(people.infosec, people.team, res.production, "deploy_to")
    campaign = review_campaign_start(actor=people.infosec, name="Q3", deadline=timezone.now() + timedelta(days=1))
    review_item_decide(actor=people.owner, review_item=campaign.items.get(grant=keep), decision="certified")
    review_campaign_close(campaign=campaign, now=campaign.deadline)
    assert guardian_drift() == []
    assert fresh(people.requester).has_perm("access.read_data", res.confidential)
    assert not fresh(people.steward).has_perm("access.read_data", res.confidential)


def test_overlapping_grants_keep_the_guardian_row_until_the_last_ends(people: People, res: Resources) -> None:
    short = grant(people.owner, people.requester, res.internal, days=1 / 24 / 60)
    long = grant(people.infosec, people.requester, res.internal, days=30)
    other = grant(people.owner, people.requester, res.internal, days=20)
    assert DatasetUserObjectPermission.objects.count() == 1  # one guardian row for three grants
    # the short one expires: still allowed by the others, in both checks
    after = short.expires_at + timedelta(seconds=1)
    assert grants_expire(now=after) == 1
    assert check(people.requester, "read_data", res.internal, at=after).grant_id in (long.pk, other.pk)
    assert fresh(people.requester).has_perm("access.read_data", res.internal)
    assert guardian_drift(now=after) == []
    # one revoked: still allowed
    grant_revoke(actor=people.owner, grant=other, reason="duplicate")
    assert fresh(people.requester).has_perm("access.read_data", res.internal)
    assert check(people.requester, "read_data", res.internal).grant_id == long.pk
    assert guardian_drift(now=after) == []
    # the last one revoked: gone from both
    grant_revoke(actor=people.infosec, grant=long, reason="done")
    assert not fresh(people.requester).has_perm("access.read_data", res.internal)
    assert not check(people.requester, "read_data", res.internal, record_denial=False)
    assert guardian_drift(now=after) == []


def test_a_user_grant_and_a_group_grant_are_separate_rows(people: People, res: Resources) -> None:
    own = grant(people.owner, people.requester, res.internal)
    grant(people.owner, people.team, res.internal)
    grant_revoke(actor=people.owner, grant=own, reason="the team grant covers it")
    # still allowed through the team, by both checks
    assert check(people.requester, "read_data", res.internal)
    assert fresh(people.requester).has_perm("access.read_data", res.internal)
    assert guardian_drift() == []


def test_overlapping_grants_of_different_permissions_are_independent(people: People, res: Resources) -> None:
    read = grant(people.owner, people.requester, res.internal, "read_data")
    grant(people.owner, people.requester, res.internal, "train_on")
    grant_revoke(actor=people.owner, grant=read, reason="train only")
    user = fresh(people.requester)
    assert not user.has_perm("access.read_data", res.internal)
    assert user.has_perm("access.train_on", res.internal)
    assert guardian_drift() == []


def test_drift_is_reported_both_ways(people: People, res: Resources) -> None:
    g = grant(people.owner, people.requester, res.internal)
    # a guardian row removed behind our back
    remove_perm("access.read_data", people.requester, res.internal)
    [missing] = guardian_drift()
    who = people.requester.pk
    assert missing.startswith(f"missing in guardian: user:{who} read_data on dataset:#{res.internal.pk}")
    assert f"grant #{g.pk}" in missing
    assign_perm("access.read_data", people.requester, res.internal)
    assert guardian_drift() == []
    # a guardian permission nobody granted
    assign_perm("access.train_on", people.steward, res.confidential)
    assign_perm("governance.deploy_to", people.team, res.production)
    drift = guardian_drift()
    steward, team = people.steward.pk, people.team.pk
    assert f"guardian has user:{steward} train_on on dataset:#{res.confidential.pk} without an open grant" in drift
    assert f"guardian has group:{team} deploy_to on environment:#{res.production.pk} without an open grant" in drift
    assert len(drift) == 2


def test_drift_reports_generic_rows_and_a_stalled_expiry(people: People, res: Resources) -> None:
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType

    ct = ContentType.objects.get_for_model(res.internal)
    UserObjectPermission.objects.create(
        user=people.steward, permission=Permission.objects.get(content_type=ct, codename="read_data"),
        content_type=ct, object_pk=str(res.internal.pk),
    )
    g = grant(people.owner, people.requester, res.internal, days=1 / 24 / 60)
    late = g.expires_at + timedelta(minutes=5)
    drift = guardian_drift(now=late)
    assert any(line.startswith(f"generic guardian row user:{people.steward.pk} read_data on dataset") for line in drift)
    assert any(line.startswith(f"grant #{g.pk} expired at") for line in drift)
    assert not any("expired at" in line for line in guardian_drift(now=g.expires_at + timedelta(seconds=30)))


def test_concurrent_revoke_and_grant_on_one_resource_stay_in_step(on_postgres: None, committing_db: None) -> None:
    """Revoking one grant while another of the same access is created: the resource lock serialises them,
    so the guardian row survives for the new grant (PostgreSQL: real row locks)."""
    from django.contrib.auth.models import Group

    from access.models import Dataset

    for name in ("infosec", "model-owner"):
        Group.objects.get_or_create(name=name)
    owner = make_user("olga", "model-owner")
    infosec = make_user("ines", "infosec")
    rita = make_user("rita", "model-owner")
    dataset = Dataset.objects.create(name="customers", owner=owner, level="internal", effective_level="internal")
    for _ in range(10):
        old = grant(owner, rita, dataset)
        errors = race(
            lambda old=old: grant_revoke(actor=owner, grant=old, reason="rotate"),  # type: ignore[misc]
            lambda: grant(infosec, rita, dataset),
        )
        assert errors == []
        assert guardian_drift() == []
        assert fresh(rita).has_perm("access.read_data", dataset)
        for g in Grant.objects.filter(revoked_at__isnull=True):
            grant_revoke(actor=infosec, grant=g, reason="reset")
        assert guardian_drift() == []
