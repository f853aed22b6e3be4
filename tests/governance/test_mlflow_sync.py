"""The registry mirror and alias reconcile, against a real MLflow registry (SQLAlchemy store on SQLite)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from io import StringIO
from pathlib import Path
from typing import Any

import mlflow
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from mlflow.exceptions import MlflowException

from access import roles
from audit import pii
from config.celery import app as celery_app
from governance import artifact_digest, registry, tasks
from governance.models import (
    ComplianceViolation,
    Environment,
    LiveDeployment,
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
)
from governance.services import deployments, environments, promotions, registry_mirror
from tests.governance.mlflow_helpers import (
    MODEL_CARD,
    MlflowStore,
    catalogued,
    entries,
    ledger_size,
    reference_digest,
    user,
)

pytestmark = pytest.mark.django_db


State = PromotionRequest.State
Capture = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]
NAME = "fraud-detector"


@pytest.fixture
def omar(envs: dict[str, Environment]) -> User:
    """The model owner the MLflow tags name (``owner: omar``); not one of the suite's people."""
    return user("omar", roles.MODEL_OWNER)


def version(number: int, name: str = NAME) -> ModelVersion:
    return ModelVersion.objects.select_related("model").get(model__name=name, version=number)


def promote(
    capture: Capture, who: User, number: int, env: Environment, *, name: str = NAME, **kwargs: Any
) -> PromotionRequest:
    """Request a promotion and run what commits would run (dev approves at once; the eager task moves the alias)."""
    with capture(execute=True):
        request = promotions.promotion_request(actor=who, version=version(number, name), environment=env,
                                               reason="ship it", **kwargs)
    request.refresh_from_db()
    return request


def registered(store: MlflowStore, *numbers: int, **register: Any) -> list[int]:
    """``len(numbers)`` versions of NAME from fresh runs, tagged as omar's, trained on catalogued internal data."""
    catalogued()
    out = []
    for auc in numbers:
        run_id = store.run(metrics={"auc": auc / 100})
        out.append(store.register(NAME, run_id, tags={"data_classification": "internal"},
                                  model_tags={"owner": "omar"}, **register))
    return out


# --- the mirror ------------------------------------------------------------------------------------------


def test_versions_with_real_runs_are_mirrored(mlflow_store: MlflowStore, omar: User) -> None:
    store = mlflow_store
    catalogued()  # card-transactions: internal
    run1 = store.run(metrics={"auc": [0.88, 0.91], "precision": 0.8}, params={"max_depth": 6, "lr": 0.1},
                     files={"model/MLmodel": "flavors: {}", "model/weights.txt": "w=0.42", "notes.txt": "not model"})
    store.register(NAME, run1, tags={"data_classification": "internal", "team": "risk"}, description="v1 card",
                   model_tags={"owner": "omar"}, model_description="Card fraud scoring")
    run2 = store.run(metrics={"auc": 0.9}, dataset=False, user="dave")
    store.register(NAME, run2, tags={"artifact_digest": "sha256:declared-by-ci", "data_classification": "top"})

    class Echo(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context: Any, model_input: list[str], params: dict[str, Any] | None = None) -> list[str]:
            return model_input

    with mlflow.start_run(experiment_id=store.experiment_id, tags={"mlflow.user": "erin"}) as run3:
        mlflow.log_metric("auc", 0.95)
        logged = mlflow.pyfunc.log_model(name="model", python_model=Echo(), pip_requirements=[])
    store.register(NAME, run3.info.run_id, source=logged.model_uri)

    report = registry_mirror.registry_reconcile()

    assert (report.models_created, report.versions_created, report.errors) == (1, 3, [])
    model = RegisteredModel.objects.get(name=NAME)
    # MLflow's owner tag is mirrored as a tag and makes nobody an owner.
    assert (model.owner, model.description, model.tags) == (None, "Card fraud scoring", {"owner": "omar"})
    assert model.mlflow_created_at is not None and model.synced_at is not None
    v1, v2, v3 = version(1), version(2), version(3)
    assert v1.run_id == run1 and v1.source == f"runs:/{run1}/model" and v1.creator == "carol"
    assert v1.metrics == {"auc": 0.91, "precision": 0.8}  # the latest value of each metric
    assert v1.params == {"max_depth": "6", "lr": "0.1"}
    assert v1.datasets == [{
        "name": "card-transactions", "digest": v1.datasets[0]["digest"], "source_type": "s3",
        "source": '{"uri": "s3://datasets/card-transactions-2025.parquet"}', "context": "training",
    }] and v1.datasets[0]["digest"]
    assert v1.artifact_digest == reference_digest(store.artifact_dir(run1)) != reference_digest(
        store.artifact_dir(run1).parent)  # the model directory only, not the whole run
    assert (v1.description, v1.tags["team"], v1.mlflow_status) == ("v1 card", "risk", "READY")
    assert v1.data_classification == "internal" and v1.mlflow_created_at is not None  # from the catalog
    # A digest declared by a version tag is never taken: it is computed from the artifact bytes.
    assert (v2.artifact_digest, v2.creator, v2.datasets, v2.data_classification) == (
        reference_digest(store.artifact_dir(run2)), "dave", [], "")
    assert v2.tags["artifact_digest"] == "sha256:declared-by-ci"  # kept as a tag, shown, never evidence
    # An MLflow 3 logged model (models:/ source) is digested from its own artifact location.
    assert v3.source == logged.model_uri and v3.creator == "erin" and v3.metrics == {"auc": 0.95}
    assert v3.artifact_digest == reference_digest(Path(logged.artifact_path.removeprefix("file://")))

    # Tag values and creators that can name a person are committed, never in the hashed body.
    [registered_model] = entries("model.registered")
    payload = registered_model.payload
    personal_tags = payload.pop("personal_tags")
    assert payload == {"model": NAME, "description": "Card fraud scoring", "tags": {}}
    assert pii.is_reference(personal_tags) and "omar" not in registered_model.payload_json
    registered_v1 = entries("model.version_registered", version=1)[0]
    payload = registered_v1.payload
    creator = payload.pop("creator")
    assert payload == {
        "model": NAME, "version": 1, "run_id": run1, "source": f"runs:/{run1}/model",
        "artifact_digest": v1.artifact_digest, "metrics": v1.metrics, "datasets": v1.datasets,
    }
    assert pii.is_reference(creator) and "carol" not in registered_v1.payload_json
    assert (registered_v1.subject_type, registered_v1.subject_id, registered_v1.actor_id) == (
        "model_version", f"{NAME}/1", "mlflow-sync")
    assert len(entries("model.version_registered")) == 3
    assert [(e.payload["version"], e.payload["level"]) for e in entries("model.version_classified")] == [
        (1, "internal")]  # the catalog's level through lineage; v2's "top" and v1's tags set nothing


def test_resync_is_idempotent_and_pages_through_the_registry(
    mlflow_store: MlflowStore, omar: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "PAGE_SIZE", 1)  # every search takes several pages
    registered(mlflow_store, 90, 91, 92)
    other_run = mlflow_store.run(metrics={"rmse": 3.5})
    mlflow_store.register("churn's model", other_run)  # a quote in the name, too

    first = registry_mirror.registry_reconcile()
    assert (first.models_seen, first.models_created, first.versions_created) == (2, 2, 4)
    assert ModelVersion.objects.count() == 4
    size = ledger_size()

    second = registry_mirror.registry_reconcile()
    tasks.sync_model.delay(NAME)
    tasks.reconcile_registry.delay()

    assert (second.models_seen, second.versions_seen) == (2, 4)
    assert (second.models_created, second.models_changed, second.versions_created, second.versions_changed) == (
        0, 0, 0, 0)
    assert ledger_size() == size  # nothing new to record


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda c: c.update_model_version(NAME, 1, description=MODEL_CARD + " Retrained on Q3 data."), "description"),
        (lambda c: _rewrite_artifact(c, "w=0.99"), "artifact_digest"),
    ],
    ids=["description", "artifact-bytes"],
)
def test_changed_evidence_makes_pending_approvals_stale(
    mlflow_store: MlflowStore, omar: User, infosec: User, envs: dict[str, Environment],
    django_capture_on_commit_callbacks: Capture, change: Callable[[Any], None], field: str,
) -> None:
    request = _staging_request_with_one_approval(mlflow_store, omar, infosec, envs, django_capture_on_commit_callbacks)
    before = promotions.approval_status(request)
    assert before["approvals"] == {"approver": 1} and before["unmet_rules"] == ["1 more from approver"]

    change(mlflow_store.client)
    tasks.sync_model.delay(NAME)

    changed = entries("model.version_changed", version=1)
    assert len(changed) == 1 and set(changed[0].payload["changes"]) >= {field}
    assert changed[0].payload["changes"][field]["to"] == getattr(version(1), field)
    request.refresh_from_db()
    after = promotions.approval_status(request)
    assert after["approvals"] == {"approver": 0} and after["unmet_rules"] == ["2 more from approver"]
    assert len(entries("promotion.evidence_changed")) == 1
    assert request.state == State.PENDING


def _rewrite_artifact(client: Any, text: str) -> None:
    run_id = client.get_model_version(NAME, 1).run_id
    uri = client.get_run(run_id).info.artifact_uri
    (Path(uri.removeprefix("file://")) / "model" / "weights.txt").write_text(text)


def test_an_artifact_digest_tag_changes_no_evidence_and_no_approval(
    mlflow_store: MlflowStore, omar: User, infosec: User, envs: dict[str, Environment],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    # given a pending request with one approval, bound to the digest computed from the artifact bytes
    request = _staging_request_with_one_approval(mlflow_store, omar, infosec, envs, django_capture_on_commit_callbacks)
    digest = version(1).artifact_digest
    assert digest.startswith("sha256:")

    # when someone who can tag the version in MLflow vouches for other bytes
    mlflow_store.client.set_model_version_tag(NAME, 1, "artifact_digest", "sha256:attacker-chosen")
    registry_mirror.registered_model_sync(NAME)

    # then: the tag is mirrored as a tag, the digest and the evidence are untouched
    assert version(1).artifact_digest == digest
    [changed] = entries("model.version_changed", version=1)
    assert set(changed.payload["changes"]) == {"tags"}
    assert promotions.approval_status(request)["approvals"] == {"approver": 1}
    assert entries("promotion.evidence_changed") == []


def test_a_tag_outside_the_evidence_is_recorded_but_approvals_stand(
    mlflow_store: MlflowStore, omar: User, infosec: User, envs: dict[str, Environment],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    request = _staging_request_with_one_approval(mlflow_store, omar, infosec, envs, django_capture_on_commit_callbacks)

    mlflow_store.client.set_model_version_tag(NAME, 1, "team", "payments-risk")
    registry_mirror.registered_model_sync(NAME)

    [changed] = entries("model.version_changed", version=1)
    assert changed.payload["changes"] == {"tags": {
        "from": {"data_classification": "internal"},
        "to": {"data_classification": "internal", "team": "payments-risk"},
    }}
    assert promotions.approval_status(request)["approvals"] == {"approver": 1}
    assert entries("promotion.evidence_changed") == []


def _staging_request_with_one_approval(
    store: MlflowStore, omar: User, infosec: User, envs: dict[str, Environment], capture: Capture
) -> PromotionRequest:
    registered(store, 91)
    registry_mirror.registry_reconcile()
    promote(capture, omar, 1, envs["dev"])
    environments.policy_set(actor=infosec, environment=envs["staging"], model=RegisteredModel.objects.get(name=NAME),
                        rules={"approvals": [{"group": roles.APPROVER, "count": 2}],
                               "gates": [{"type": "model_card", "min_length": 20}, {"type": "data_classification"}]})
    request = promotions.promotion_request(actor=omar, version=version(1), environment=envs["staging"],
                                         reason="to staging")
    promotions.promotion_approve(actor=user("adam", roles.APPROVER), promotion=request, comment="metrics look right")
    return request


def test_missing_versions_and_models_are_marked_deleted(mlflow_store: MlflowStore, omar: User) -> None:
    registered(mlflow_store, 90, 91)
    registry_mirror.registry_reconcile()

    mlflow_store.client.delete_model_version(NAME, 1)
    report = registry_mirror.registry_reconcile()
    assert report.versions_missing == 1 and version(1).mlflow_status == "DELETED" == registry_mirror.DELETED_STATUS
    [changed] = entries("model.version_changed")
    assert changed.payload["changes"] == {"status": {"from": "READY", "to": "DELETED"}}

    mlflow_store.client.delete_registered_model(NAME)
    assert registry_mirror.registry_reconcile().versions_missing == 1
    assert version(2).mlflow_status == "DELETED" and RegisteredModel.objects.filter(name=NAME).exists()
    assert tasks.sync_model.delay(NAME).get()["versions_missing"] == 0  # already marked: idempotent
    assert registry_mirror.registered_model_sync("never-registered") == registry_mirror.ReconcileReport()


def test_reconcile_reports_progress_per_model_including_those_gone_from_mlflow(
    mlflow_store: MlflowStore, omar: User
) -> None:
    # given two mirrored models, one of which has since been deleted from MLflow, and a new one
    registered(mlflow_store, 90)
    mlflow_store.register("churn", mlflow_store.run(metrics={"rmse": 3.5}))
    registry_mirror.registry_reconcile()
    mlflow_store.client.delete_registered_model("churn")
    mlflow_store.register("ltv", mlflow_store.run(metrics={"rmse": 2.5}))
    calls: list[tuple[int, int | None]] = []

    # when
    registry_mirror.registry_reconcile(progress=lambda done, total: calls.append((done, total)))

    # then: one call per model; the total starts from the mirror and ends exact
    assert [done for done, _ in calls] == [1, 2, 3]
    assert all(total is not None and total >= done for done, total in calls)
    assert calls[-1] == (3, 3)


def test_model_changes_are_mirrored_and_recorded(
    mlflow_store: MlflowStore, omar: User
) -> None:
    registered(mlflow_store, 90)
    registry_mirror.registry_reconcile()
    mlflow_store.client.update_registered_model(NAME, description="Card fraud scoring, v2 features")
    mlflow_store.client.set_registered_model_tag(NAME, "owner", "olga")
    mlflow_store.client.set_registered_model_tag(NAME, "team", "risk")
    user("olga", roles.MODEL_OWNER)

    assert registry_mirror.registry_reconcile().models_changed == 1
    model = RegisteredModel.objects.get(name=NAME)
    assert (model.description, model.owner) == ("Card fraud scoring, v2 features", None)
    [changed] = entries(registry_mirror.MODEL_CHANGED_EVENT)
    assert changed.payload["changes"] == {
        "description": {"from": "", "to": "Card fraud scoring, v2 features"},
        "tags": {"from": {}, "to": {"team": "risk"}},
    }
    assert pii.is_reference(changed.payload["personal_changes"])
    assert "olga" not in changed.payload_json and "omar" not in changed.payload_json


# --- aliases -----------------------------------------------------------------------------------------------


def test_approved_promotion_moves_the_real_alias_and_rollback_moves_it_back(
    mlflow_store: MlflowStore, omar: User, envs: dict[str, Environment],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    registered(mlflow_store, 90, 92)
    registry_mirror.registry_reconcile()
    dev = envs["dev"]

    first = promote(django_capture_on_commit_callbacks, omar, 1, dev)
    assert first.state == State.DEPLOYED and mlflow_store.aliases(NAME) == {"dev": 1}
    second = promote(django_capture_on_commit_callbacks, omar, 2, dev)
    assert second.state == State.DEPLOYED and second.previous_version == version(1)
    assert mlflow_store.aliases(NAME) == {"dev": 2}

    with django_capture_on_commit_callbacks(execute=True):
        deployments.promotion_rollback(actor=omar, model=version(2).model, environment=dev, reason="latency regression")
    assert mlflow_store.aliases(NAME) == {"dev": 1}
    assert LiveDeployment.objects.get(environment=dev).version == version(1)
    [moved_back] = entries("mlflow.alias_changed", reason=f"rollback of #{second.pk}")
    assert (moved_back.payload["version"], moved_back.payload["previous_version"]) == (1, 2)

    size = ledger_size()
    report = registry_mirror.registry_reconcile()  # MLflow and governance agree: nothing to do
    assert (report.violations, report.deployments_completed, ledger_size()) == (0, 0, size)


def test_a_rollback_whose_alias_move_is_still_queued_is_not_out_of_band(
    mlflow_store: MlflowStore, omar: User, infosec: User, envs: dict[str, Environment],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    registered(mlflow_store, 90, 91)
    registry_mirror.registry_reconcile()
    dev = envs["dev"]
    environments.policy_set(actor=infosec, environment=dev, model=RegisteredModel.objects.get(name=NAME),
                        rules={"approvals": [], "gates": [], "revert_out_of_band": True})
    promote(django_capture_on_commit_callbacks, omar, 1, dev)
    promote(django_capture_on_commit_callbacks, omar, 2, dev)
    with django_capture_on_commit_callbacks(execute=False) as queued:  # apply_rollback not run yet
        deployments.promotion_rollback(actor=omar, model=version(2).model, environment=dev, reason="regression")

    report = registry_mirror.registry_reconcile()

    assert (report.violations, report.aliases_reverted) == (0, 0)
    assert mlflow_store.aliases(NAME) == {"dev": 2}  # left to the queued task
    for callback in queued:
        callback()
    assert mlflow_store.aliases(NAME) == {"dev": 1} and not ComplianceViolation.objects.exists()


def test_out_of_band_alias_in_production_is_detected_and_reverted(
    mlflow_store: MlflowStore, omar: User, envs: dict[str, Environment]
) -> None:
    registered(mlflow_store, 90)
    registry_mirror.registry_reconcile()
    mlflow_store.client.set_registered_model_alias(NAME, "production", "1")  # nothing is approved for production

    report = registry_mirror.registry_reconcile()

    assert (report.violations, report.aliases_reverted) == (1, 1)
    assert mlflow_store.aliases(NAME) == {}  # nothing is live: the alias is removed
    violation = ComplianceViolation.objects.get()
    assert (violation.kind, violation.subject_type, violation.subject_id, violation.reverted) == (
        "out_of_band_alias", "registered_model", NAME, True)
    assert violation.details == {"model": NAME, "alias": "production", "environment": "production",
                                 "found_version": 1, "expected_version": None}
    [recorded] = entries("compliance.violation")
    assert recorded.payload["details"] == violation.details and recorded.subject_id == NAME
    [reverted] = entries("mlflow.alias_reverted")
    assert reverted.payload == {"model": NAME, "alias": "production", "found_version": 1, "restored_version": None}

    size = ledger_size()
    assert registry_mirror.registry_reconcile().violations == 0 and ledger_size() == size


def test_out_of_band_alias_is_reverted_to_the_live_version(
    mlflow_store: MlflowStore, omar: User, infosec: User, envs: dict[str, Environment],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    registered(mlflow_store, 90, 91)
    registry_mirror.registry_reconcile()
    dev = envs["dev"]
    environments.policy_set(actor=infosec, environment=dev, model=RegisteredModel.objects.get(name=NAME),
                        rules={"approvals": [], "gates": [], "revert_out_of_band": True})
    promote(django_capture_on_commit_callbacks, omar, 1, dev)
    mlflow_store.client.set_registered_model_alias(NAME, "dev", "2")

    report = registry_mirror.registry_reconcile()

    assert (report.violations, report.aliases_reverted) == (1, 1)
    assert mlflow_store.aliases(NAME) == {"dev": 1}
    [reverted] = entries("mlflow.alias_reverted")
    assert (reverted.payload["found_version"], reverted.payload["restored_version"]) == (2, 1)
    assert ComplianceViolation.objects.get().reverted


def test_out_of_band_alias_in_dev_is_detected_once_and_not_reverted(
    mlflow_store: MlflowStore, omar: User, envs: dict[str, Environment],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    registered(mlflow_store, 90, 91, 92)
    registry_mirror.registry_reconcile()
    promote(django_capture_on_commit_callbacks, omar, 1, envs["dev"])
    mlflow_store.client.set_registered_model_alias(NAME, "dev", "2")

    assert registry_mirror.registry_reconcile().violations == 1
    assert registry_mirror.registry_reconcile().violations == 0  # the same open violation is not recorded again
    tasks.sync_model.delay(NAME)

    assert mlflow_store.aliases(NAME) == {"dev": 2}  # dev's policy does not revert
    violation = ComplianceViolation.objects.get()
    assert not violation.reverted and violation.details["found_version"] == 2
    assert violation.details["expected_version"] == 1
    assert len(entries("compliance.violation")) == 1 and entries("mlflow.alias_reverted") == []

    mlflow_store.client.set_registered_model_alias(NAME, "dev", "3")  # another change: another violation
    mlflow_store.client.set_registered_model_alias(NAME, "staging", "3")
    assert registry_mirror.registry_reconcile().violations == 2
    mlflow_store.client.delete_registered_model_alias(NAME, "dev")  # the live alias removed out of band
    assert registry_mirror.registry_reconcile().violations == 1
    found = [(v.details["alias"], v.details["found_version"]) for v in ComplianceViolation.objects.order_by("pk")]
    assert found == [("dev", 2), ("dev", 3), ("staging", 3), ("dev", None)]
    assert len(entries("compliance.violation")) == 4


def test_a_deployment_interrupted_after_moving_the_alias_is_completed_by_reconcile(
    mlflow_store: MlflowStore, omar: User, envs: dict[str, Environment]
) -> None:
    registered(mlflow_store, 90)
    registry_mirror.registry_reconcile()
    # Approved at once (dev); the deploy task is not run: it "crashes" right after moving the alias.
    request = promotions.promotion_request(actor=omar, version=version(1), environment=envs["dev"], reason="ship")
    request = deployments.promotion_deploy_start(promotion=request)
    registry.set_alias(NAME, "dev", 1)

    report = registry_mirror.registry_reconcile()

    assert (report.deployments_completed, report.violations) == (1, 0)
    request.refresh_from_db()
    assert request.state == State.DEPLOYED
    assert LiveDeployment.objects.get(environment=envs["dev"]).promotion == request
    assert [e.event_type for e in entries() if e.subject_type == "promotion_request"][-3:] == [
        "promotion.alias_applied", "promotion.deployed", "promotion.receipt_issued"]
    assert ComplianceViolation.objects.count() == 0


# --- MLflow unavailable ------------------------------------------------------------------------------------


@pytest.fixture
def mlflow_down(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """MLflow's tracking server is unreachable (nothing listens on port 9); MLflow's own HTTP retries are off.

    Eager tasks retry as a worker would only when their errors don't propagate (Celery re-raises
    ``Retry`` itself otherwise), so propagation is off here.
    """
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = "http://127.0.0.1:9"
    registry._client.cache_clear()
    saved = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False
    yield
    celery_app.conf.task_eager_propagates = saved
    registry._client.cache_clear()


def test_mlflow_down_apply_promotion_retries_then_marks_the_request_failed(
    mlflow_store: MlflowStore, omar: User, envs: dict[str, Environment], request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registered(mlflow_store, 90)
    registry_mirror.registry_reconcile()
    promotion = promotions.promotion_request(actor=omar, version=version(1), environment=envs["dev"], reason="ship")
    assert promotion.state == State.APPROVED
    request.getfixturevalue("mlflow_down")
    attempts: list[int] = []
    real_set_alias = registry.set_alias

    def counting_set_alias(*args: Any) -> None:
        attempts.append(1)
        real_set_alias(*args)

    monkeypatch.setattr(registry, "set_alias", counting_set_alias)
    # As on a worker: eager tasks don't retry (see tasks._can_retry), so let these.
    monkeypatch.setattr(tasks, "_can_retry", lambda task: task.request.retries < task.max_retries)

    assert tasks.apply_promotion.delay(promotion.pk).get() == "failed"

    # Each attempt stops at re-reading the version's evidence (MLflow down): no alias move is even tried.
    assert attempts == []
    promotion.refresh_from_db()
    assert promotion.deploy_attempts == tasks.apply_promotion.max_retries + 1
    promotion.refresh_from_db()
    assert promotion.state == State.FAILED and promotion.last_error.startswith("MLflow registry error")
    [failed] = entries("promotion.deploy_failed")
    assert failed.subject_id == str(promotion.pk) and failed.payload["error"].startswith("MLflow registry error")
    assert entries("promotion.alias_applied") == [] and not LiveDeployment.objects.exists()


def test_mlflow_down_without_a_broker_fails_once_and_records_it(
    mlflow_store: MlflowStore, omar: User, envs: dict[str, Environment], request: pytest.FixtureRequest,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    # given: the embedded setup, where the deploy task runs eagerly right after the approving commit
    registered(mlflow_store, 90)
    registry_mirror.registry_reconcile()
    request.getfixturevalue("mlflow_down")
    # when: the dev policy approves at once and the after-commit deploy meets a dead registry
    with django_capture_on_commit_callbacks(execute=True):
        promotion = promotions.promotion_request(actor=omar, version=version(1), environment=envs["dev"], reason="x")
    # then: no exception reached the requester; one attempt, recorded as failed
    promotion.refresh_from_db()
    assert promotion.state == State.FAILED and promotion.deploy_attempts == 1
    assert [e.subject_id for e in entries("promotion.deploy_failed")] == [str(promotion.pk)]


def test_mlflow_down_reconcile_retries_and_changes_nothing(
    mlflow_store: MlflowStore, omar: User, mlflow_down: None
) -> None:
    size = ledger_size()
    with pytest.raises(MlflowException):
        tasks.reconcile_registry.delay().get()
    with pytest.raises(MlflowException):
        tasks.sync_model.delay(NAME).get()
    assert ledger_size() == size and not RegisteredModel.objects.exists()


# --- the command and the digest ----------------------------------------------------------------------------


def test_reconcile_mlflow_command_prints_the_report(mlflow_store: MlflowStore, omar: User) -> None:
    registered(mlflow_store, 90, 91)
    out = StringIO()
    call_command("reconcile_mlflow", stdout=out)
    assert "models: 1 seen, 1 new, 0 changed" in out.getvalue()
    assert "versions: 2 seen, 2 new, 0 changed" in out.getvalue()
    out = StringIO()
    call_command("reconcile_mlflow", "--model", NAME, stdout=out)
    assert "versions: 2 seen, 0 new, 0 changed" in out.getvalue() and "reconciled" in out.getvalue()


def test_directory_digest_is_stable_follows_no_links_and_has_limits(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"\x00" * 100)
    (model / "sub" / "MLmodel").write_text("flavors: {}")
    digest = artifact_digest.directory_digest(model)
    assert digest == reference_digest(model) and digest.startswith("sha256:")
    (tmp_path / "outside.txt").write_text("secret")
    (model / "link").symlink_to(tmp_path / "outside.txt")
    with_link = artifact_digest.directory_digest(model)
    (tmp_path / "outside.txt").write_text("changed")
    assert artifact_digest.directory_digest(model) == with_link != digest  # the link counts by target, not content
    assert artifact_digest.directory_digest(model, max_bytes=50) == ""
    assert artifact_digest.directory_digest(model, max_files=2) == ""
    assert artifact_digest.directory_digest(tmp_path / "missing") == ""
    assert artifact_digest.directory_digest(model / "weights.bin") != ""
