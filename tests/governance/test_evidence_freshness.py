"""Approvals and deployments decide on the evidence MLflow has now (issue #16 §2), against a real MLflow registry.

MLflow sends no webhook when a model card (description) or a registered model's tags are edited, so the
mirror can be as old as the last sweep. ``promotion_approve`` and the deploy task re-read the version from
MLflow first; what changed is recorded and the gates run on it. MLflow unreachable: refused, nothing written.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from access import roles
from governance import registry, tasks
from governance.errors import RegistryUnreachable
from governance.models import Approval, Environment, ModelVersion, PromotionRequest
from governance.services import promotions, registry_mirror
from tests.governance.helpers import snapshot
from tests.governance.mlflow_helpers import MODEL_CARD, MlflowStore, catalogued, entries, ledger_size, user

pytestmark = pytest.mark.django_db

NAME = "fraud-detector"
State = PromotionRequest.State
Capture = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]


@pytest.fixture
def omar(envs: dict[str, Environment]) -> User:
    return user("omar", roles.MODEL_OWNER)


@pytest.fixture
def adam(envs: dict[str, Environment]) -> User:
    return user("adam", roles.APPROVER)


@pytest.fixture
def mlflow_down(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """MLflow unreachable (nothing listens on port 9; MLflow's own HTTP retries off)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = "http://127.0.0.1:9"
    registry._client.cache_clear()
    yield
    registry._client.cache_clear()


def version(number: int = 1) -> ModelVersion:
    return ModelVersion.objects.select_related("model").get(model__name=NAME, version=number)


def staging_request(store: MlflowStore, omar: User, envs: dict[str, Environment], capture: Capture,
                    *, versions: int = 1, **register: Any) -> PromotionRequest:
    """fraud-detector v1 (of ``versions``) in MLflow, mirrored, deployed to dev, and asked for staging
    (one approver, gates model_card and data_classification), its gates passing."""
    catalogued()
    for n in range(versions):
        store.register(NAME, store.run(metrics={"auc": 0.9 + n / 100}), **register)
    registry_mirror.registry_reconcile()
    with capture(execute=True):  # dev approves at once; the eager deploy task moves its alias
        promotions.promotion_request(actor=omar, version=version(), environment=envs["dev"], reason="nightly")
    request = promotions.promotion_request(actor=omar, version=version(), environment=envs["staging"],
                                           reason="to staging")
    assert request.state == State.PENDING and all(g["passed"] for g in request.evidence["gates"])
    return request


@pytest.mark.parametrize("edited", [True, False])
def test_an_approval_after_the_model_card_was_emptied_in_mlflow_is_decided_on_the_fresh_evidence(
    mlflow_store: MlflowStore, omar: User, adam: User, envs: dict[str, Environment],
    django_capture_on_commit_callbacks: Capture, edited: bool,
) -> None:
    request = staging_request(mlflow_store, omar, envs, django_capture_on_commit_callbacks)
    digest = request.evidence_digest
    if edited:  # the model card is emptied directly in MLflow: no webhook, no sync since
        mlflow_store.client.update_model_version(NAME, "1", description="")

    with django_capture_on_commit_callbacks(execute=False):
        promotions.promotion_approve(actor=adam, promotion=request, comment="card and metrics reviewed")

    request.refresh_from_db()
    [given] = entries("promotion.approval_given")
    assert given.payload["evidence_digest"] == request.evidence_digest
    if not edited:  # the control: the same approval on unchanged evidence approves
        assert request.state == State.APPROVED and request.evidence_digest == digest
        assert entries("model.version_changed") == [] and entries("promotion.evidence_changed") == []
        return
    # the change is recorded, the evidence re-evaluated, and the approval counted on it: the card gate fails
    [changed] = entries("model.version_changed", version=1)
    assert changed.payload["changes"] == {"description": {"from": MODEL_CARD, "to": ""}}
    [evidence] = entries("promotion.evidence_changed")
    assert evidence.payload["previous_digest"] == digest != request.evidence_digest
    assert request.state == State.PENDING
    assert [e for e in entries("promotion.approved") if e.subject_id == str(request.pk)] == []
    assert not next(g for g in request.evidence["gates"] if g["type"] == "model_card")["passed"]
    assert changed.seq < evidence.seq < given.seq


def test_a_registered_model_s_card_and_tags_edited_in_mlflow_are_recorded_before_the_approval(
    mlflow_store: MlflowStore, omar: User, adam: User, envs: dict[str, Environment],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    # given versions without a card of their own: the registered model's description is their card
    request = staging_request(mlflow_store, omar, envs, django_capture_on_commit_callbacks, description="",
                              model_description=MODEL_CARD)
    mlflow_store.client.update_registered_model(NAME, description="")
    mlflow_store.client.set_registered_model_tag(NAME, "tier", "experimental")

    with django_capture_on_commit_callbacks(execute=False):
        promotions.promotion_approve(actor=adam, promotion=request, comment="reviewed")

    [changed] = entries("model.changed")
    assert changed.payload["changes"] == {"description": {"from": MODEL_CARD, "to": ""},
                                          "tags": {"from": {}, "to": {"tier": "experimental"}}}
    request.refresh_from_db()
    assert request.state == State.PENDING and len(entries("promotion.evidence_changed")) == 1


def test_with_mlflow_down_an_approval_is_refused_and_nothing_is_written(
    mlflow_store: MlflowStore, omar: User, adam: User, envs: dict[str, Environment],
    django_capture_on_commit_callbacks: Capture, request: pytest.FixtureRequest,
) -> None:
    promotion = staging_request(mlflow_store, omar, envs, django_capture_on_commit_callbacks)
    request.getfixturevalue("mlflow_down")
    before = snapshot()

    with pytest.raises(RegistryUnreachable, match="could not be reached"):
        promotions.promotion_approve(actor=adam, promotion=promotion, comment="reviewed")

    assert snapshot() == before and not Approval.objects.exists()


def test_the_api_answers_503_with_retry_after_when_mlflow_is_down_at_approval(
    mlflow_store: MlflowStore, omar: User, adam: User, envs: dict[str, Environment],
    django_capture_on_commit_callbacks: Capture, request: pytest.FixtureRequest, as_user: Any, settings: Any,
) -> None:
    settings.RETRY_AFTER_SECONDS = 17  # one setting for every 503, the registry's included
    promotion = staging_request(mlflow_store, omar, envs, django_capture_on_commit_callbacks)
    request.getfixturevalue("mlflow_down")
    size = ledger_size()

    response = as_user(adam).post(f"/api/v1/promotions/{promotion.pk}/approve", {"comment": "ok"}, format="json")

    assert response.status_code == 503 and response["Retry-After"] == "17"
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"], body["dependency"]) == (503, "unavailable", "registry")
    assert "MLflow" in body["detail"]
    assert ledger_size() == size and not Approval.objects.exists()


def test_who_may_not_approve_is_refused_before_mlflow_is_read(
    mlflow_store: MlflowStore, omar: User, envs: dict[str, Environment],
    django_capture_on_commit_callbacks: Capture, request: pytest.FixtureRequest, as_user: Any,
) -> None:
    # The requester (and anyone outside the policy's groups) gets the refusal, not a 503: MLflow is not
    # called for them at all (it is down here, and no 503 comes back).
    promotion = staging_request(mlflow_store, omar, envs, django_capture_on_commit_callbacks)
    request.getfixturevalue("mlflow_down")
    outsider = user("olga")
    for who, code in ((omar, "not_permitted"), (outsider, None)):
        response = as_user(who).post(f"/api/v1/promotions/{promotion.pk}/approve", {"comment": "ok"},
                                     format="json")
        assert response.status_code in (403, 404), response.content
        if code:
            assert response.json()["code"] == code
    assert not Approval.objects.exists()


def test_the_deploy_task_stops_a_promotion_whose_evidence_changed_after_its_approval(
    mlflow_store: MlflowStore, omar: User, adam: User, envs: dict[str, Environment],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    # given an approved staging promotion whose deployment has not run yet
    promotion = staging_request(mlflow_store, omar, envs, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=False):
        promotions.promotion_approve(actor=adam, promotion=promotion, comment="reviewed")
    promotion.refresh_from_db()
    assert promotion.state == State.APPROVED
    # when its model card is emptied in MLflow before the deploy task runs
    mlflow_store.client.update_model_version(NAME, "1", description="")

    assert tasks.apply_promotion.delay(promotion.pk).get() == "refused: evidence changed since the approval"

    promotion.refresh_from_db()
    assert promotion.state == State.FAILED and "evidence changed" in promotion.last_error
    assert [e.event_type for e in entries() if e.subject_id == str(promotion.pk)][-3:] == [
        "promotion.deploy_started", "promotion.evidence_changed", "promotion.deploy_failed"]
    assert "staging" not in mlflow_store.aliases(NAME)  # no alias was moved


def test_the_deploy_task_deploys_when_the_evidence_is_unchanged(
    mlflow_store: MlflowStore, omar: User, adam: User, envs: dict[str, Environment],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    promotion = staging_request(mlflow_store, omar, envs, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        promotions.promotion_approve(actor=adam, promotion=promotion, comment="reviewed")
    promotion.refresh_from_db()
    assert promotion.state == State.DEPLOYED and mlflow_store.aliases(NAME)["staging"] == 1


@pytest.mark.parametrize("versions", [1, 6])
def test_the_re_read_costs_the_same_queries_however_many_versions_the_model_has(
    mlflow_store: MlflowStore, omar: User, adam: User, envs: dict[str, Environment],
    django_capture_on_commit_callbacks: Capture, versions: int,
) -> None:
    promotion = staging_request(mlflow_store, omar, envs, django_capture_on_commit_callbacks, versions=versions)
    with CaptureQueriesContext(connection) as refresh:
        registry_mirror.version_evidence_refresh(version=version())
    with CaptureQueriesContext(connection) as approval, django_capture_on_commit_callbacks(execute=False):
        promotions.promotion_approve(actor=adam, promotion=promotion, comment="reviewed")
    # Measured on SQLite and PostgreSQL alike, for 1 and 6 versions: the unchanged re-read is 13 queries
    # (savepoints included: two short transactions, the model's and the version's), the whole approval 33
    # (16 without the re-read, tests/governance/test_promotions.py, plus the unlocked pre-check).
    assert len(refresh) <= 13
    assert len(approval) <= 33
