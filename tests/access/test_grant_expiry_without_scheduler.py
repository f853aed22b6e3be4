"""Issue 8h: a grant stops at its ``expires_at`` even when the expiry task never ran.

The guardian mirror row of a lapsed grant stays until ``grants_expire`` runs; every
way of asking guardian (``has_perm``, ``get_all_permissions``) and every API path
built on grants must refuse from ``expires_at`` on regardless.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from access.models import DatasetUserObjectPermission, Grant
from access.services.grants import grant_revoke
from access.services.service_accounts import service_account_create
from tests.access.helpers import GUARDIAN_TABLES, grant
from tests.catalog import Resources
from tests.personas import People, fresh

pytestmark = pytest.mark.django_db

# fixtures

UserClient = Callable[[User | None], APIClient]


def _lapse(*grants: Grant) -> None:
    """Move the expiry into the past without running the expiry task (the guardian rows stay)."""
    Grant.objects.filter(pk__in=[g.pk for g in grants]).update(expires_at=timezone.now() - timedelta(seconds=1))


def _mirror_rows() -> int:
    return sum(table.objects.count() for table in GUARDIAN_TABLES)


def test_a_lapsed_grant_is_not_a_guardian_permission(people: People, res: Resources) -> None:
    # given: grants to a person, a group and a service account, all live and mirrored
    bot = service_account_create(actor=people.requester, name="rita-bot")
    direct = grant(people.owner, people.requester, res.internal, "read_data")
    team = grant(people.owner, people.team, res.confidential, "train_on")
    machine = grant(people.owner, bot.user, res.model, "view_metadata")
    env = grant(people.infosec, people.steward, res.production, "deploy_to")
    assert fresh(people.requester).has_perm("access.read_data", res.internal)
    assert fresh(people.requester).has_perm("access.train_on", res.confidential)
    assert fresh(bot.user).has_perm("governance.view_metadata", res.model)
    assert fresh(people.steward).has_perm("governance.deploy_to", res.production)
    mirrored = _mirror_rows()
    # when: they lapse and nothing runs the expiry
    _lapse(direct, team, machine, env)
    # then: the mirror still holds them, and none of them counts
    assert _mirror_rows() == mirrored == 4
    assert not fresh(people.requester).has_perm("access.read_data", res.internal)
    assert not fresh(people.requester).has_perm("access.train_on", res.confidential)
    assert not fresh(bot.user).has_perm("governance.view_metadata", res.model)
    assert not fresh(people.steward).has_perm("governance.deploy_to", res.production)
    assert fresh(people.requester).get_all_permissions(res.internal) == set()
    assert fresh(people.requester).get_all_permissions(res.confidential) == set()
    assert fresh(bot.user).get_all_permissions(res.model) == set()


def test_a_revoked_or_missing_grant_is_refused_and_a_live_one_allowed(people: People, res: Resources) -> None:
    live = grant(people.owner, people.requester, res.internal, "read_data")
    user = fresh(people.requester)
    assert user.has_perm("access.read_data", res.internal)
    assert user.get_all_permissions(res.internal) == {"read_data"}
    # a permission of another app, one that does not apply, one never granted
    assert not fresh(people.requester).has_perm("governance.read_data", res.internal)
    assert not fresh(people.requester).has_perm("access.deploy_to", res.internal)
    assert not fresh(people.requester).has_perm("access.train_on", res.internal)
    # a guardian row with no grant behind it (drift, or written around the services) gives nothing
    DatasetUserObjectPermission.objects.create(
        user=people.requester, content_object=res.public,
        permission=DatasetUserObjectPermission._meta.get_field("permission").related_model.objects.get(
            codename="read_data", content_type__app_label="access"),
    )
    assert not fresh(people.requester).has_perm("access.read_data", res.public)
    # revoked: refused at once
    grant_revoke(actor=people.owner, grant=live, reason="done")
    assert not fresh(people.requester).has_perm("access.read_data", res.internal)
    # an inactive principal holds nothing, grant or not
    grant(people.owner, people.steward, res.internal, "read_data")
    people.steward.is_active = False
    people.steward.save()
    assert not fresh(people.steward).has_perm("access.read_data", res.internal)


def test_api_paths_refuse_a_lapsed_grant(people: People, res: Resources, as_user: UserClient,
                                         token_for: Any) -> None:
    # given: the requester's lapsed grants on a dataset and the model (expiry task not run)
    on_data = grant(people.owner, people.requester, res.internal, "read_data")
    on_model = grant(people.owner, people.requester, res.model, "view_metadata")
    client = as_user(people.requester)
    assert client.get("/api/v1/datasets/payments-internal").status_code == 200
    assert client.get("/api/v1/models/fraud-detector").status_code == 200
    _lapse(on_data, on_model)
    # then: the dataset and the model are invisible again, and the access check says no
    assert client.get("/api/v1/datasets/payments-internal").status_code == 404
    assert client.get("/api/v1/models/fraud-detector").status_code == 404
    checker = token_for(["access:check"])
    answer = checker.post("/api/v1/access/check", {"principal": "user:rita", "resource": "dataset:payments-internal",
                                                   "permission": "read_data"}, format="json")
    assert answer.status_code == 200 and answer.json()["allowed"] is False
