"""Every alias governance manages is reconciled: the environments' aliases, the canary/shadow candidate aliases
and look-alikes in an environment's namespace, against a real MLflow registry (SQLAlchemy store on SQLite)."""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from access import roles
from audit.ledger import Actor
from governance import registry, services, sync
from governance.models import ComplianceViolation, Environment, ModelVersion, PromotionRequest, RegisteredModel
from tests.governance.mlflow_helpers import MlflowStore, catalogued, entries, ledger_size, user

pytestmark = pytest.mark.django_db


State = PromotionRequest.State
Capture = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]
NAME = "fraud-detector"
RUNTIME = Actor.service("seldon-dev")
STRATEGIES = ["canary", "shadow"]


@pytest.fixture
def omar(envs: dict[str, Environment]) -> User:
    """The model owner the MLflow tags name (``owner: omar``); not one of the suite's people."""
    return user("omar", roles.MODEL_OWNER)


@pytest.fixture
def model(mlflow_store: MlflowStore, omar: User) -> RegisteredModel:
    """fraud-detector v1..v3 in MLflow, mirrored, trained on a catalogued internal dataset."""
    catalogued()
    for auc in (90, 91, 92):
        run_id = mlflow_store.run(metrics={"auc": auc / 100})
        mlflow_store.register(NAME, run_id, tags={"data_classification": "internal"}, model_tags={"owner": "omar"})
    sync.registry_reconcile()
    return RegisteredModel.objects.get(name=NAME)


@pytest.fixture
def dev_reverts(model: RegisteredModel, infosec: User, envs: dict[str, Environment]) -> Environment:
    """dev approves at once (no approvers) and, for this model, reverts out-of-band alias changes."""
    services.policy_set(user=infosec, environment=envs["dev"], model=model,
                        rules={"approvals": [], "gates": [], "revert_out_of_band": True})
    return envs["dev"]


def version(number: int) -> ModelVersion:
    return ModelVersion.objects.select_related("model").get(model__name=NAME, version=number)


def promote(capture: Capture, who: User, number: int, env: Environment, **kwargs: Any) -> PromotionRequest:
    """Request a promotion to dev (approved at once) and run the deploy task that commits queue."""
    with capture(execute=True):
        request = services.promotion_request(user=who, version=version(number), environment=env, reason="ship it",
                                             **kwargs)
    request.refresh_from_db()
    return request


def violations() -> list[tuple[str, int | None, int | None, bool]]:
    return [(v.details["alias"], v.details["found_version"], v.details["expected_version"], v.reverted)
            for v in ComplianceViolation.objects.filter(kind="out_of_band_alias").order_by("pk")]


def assert_quiet_reconcile() -> None:
    """A reconcile that finds nothing out of band writes nothing."""
    size, count = ledger_size(), ComplianceViolation.objects.count()  # any kind: a quiet reconcile writes none
    report = sync.registry_reconcile()
    assert (report.violations, report.aliases_reverted, report.errors) == (0, 0, [])
    assert (ledger_size(), ComplianceViolation.objects.count()) == (size, count)


# --- candidate aliases set out of band ----------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_out_of_band_production_candidate_alias_is_flagged_deleted_and_not_repeated(
    mlflow_store: MlflowStore, model: RegisteredModel, strategy: str
) -> None:
    alias = f"production-{strategy}"
    mlflow_store.client.set_registered_model_alias(NAME, alias, "1")  # nothing rolls out in production

    report = sync.registry_reconcile()

    assert (report.violations, report.aliases_reverted) == (1, 1)
    assert mlflow_store.aliases(NAME) == {}  # production's default policy reverts: the alias is removed
    violation = ComplianceViolation.objects.get(kind="out_of_band_alias")
    assert (violation.kind, violation.subject_type, violation.subject_id) == (
        "out_of_band_alias", "registered_model", NAME)
    assert violation.details == {"model": NAME, "alias": alias, "environment": "production",
                                 "found_version": 1, "expected_version": None}
    assert f"no {strategy} rollout in progress" in violation.summary
    [recorded] = entries("compliance.violation")
    assert recorded.payload["details"] == violation.details
    [reverted] = entries("mlflow.alias_reverted")
    assert reverted.payload == {"model": NAME, "alias": alias, "found_version": 1, "restored_version": None}
    assert reverted.actor == {"type": "system", "id": "mlflow-reconcile"}

    assert_quiet_reconcile()


def test_a_pending_rollout_does_not_make_its_candidate_alias_legitimate(
    mlflow_store: MlflowStore, model: RegisteredModel, omar: User, envs: dict[str, Environment],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    promote(django_capture_on_commit_callbacks, omar, 1, envs["dev"])
    staging = services.promotion_request(user=omar, version=version(1), environment=envs["staging"],
                                         reason="try it", strategy="canary")
    assert staging.state == State.PENDING  # staging needs an approver
    mlflow_store.client.set_registered_model_alias(NAME, "staging-canary", "1")  # jumping the approval

    report = sync.registry_reconcile()

    assert (report.violations, report.aliases_reverted) == (1, 0)  # staging's default policy only flags
    assert violations() == [("staging-canary", 1, None, False)]
    assert mlflow_store.aliases(NAME) == {"dev": 1, "staging-canary": 1}
    assert sync.registry_reconcile().violations == 0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_rolling_out_candidate_alias_moved_to_another_version_is_put_back(
    mlflow_store: MlflowStore, model: RegisteredModel, omar: User, dev_reverts: Environment,
    django_capture_on_commit_callbacks: Capture, strategy: str,
) -> None:
    promote(django_capture_on_commit_callbacks, omar, 1, dev_reverts)
    rollout = promote(django_capture_on_commit_callbacks, omar, 2, dev_reverts, strategy=strategy)
    assert rollout.state == State.DEPLOYING
    alias = f"dev-{strategy}"
    assert mlflow_store.aliases(NAME) == {"dev": 1, alias: 2}
    mlflow_store.client.set_registered_model_alias(NAME, alias, "3")  # v3 was never approved anywhere

    report = sync.registry_reconcile()

    assert (report.violations, report.aliases_reverted) == (1, 1)
    assert mlflow_store.aliases(NAME) == {"dev": 1, alias: 2}
    assert violations() == [(alias, 3, 2, True)]
    [reverted] = entries("mlflow.alias_reverted")
    assert (reverted.payload["alias"], reverted.payload["found_version"], reverted.payload["restored_version"]) == (
        alias, 3, 2)
    rollout.refresh_from_db()
    assert rollout.state == State.DEPLOYING  # the rollout itself goes on
    assert_quiet_reconcile()


def test_a_candidate_alias_deleted_and_set_again_is_a_new_violation_each_time_in_dev(
    mlflow_store: MlflowStore, model: RegisteredModel, omar: User, envs: dict[str, Environment],
    django_capture_on_commit_callbacks: Capture,
) -> None:
    promote(django_capture_on_commit_callbacks, omar, 1, envs["dev"], strategy="canary")
    mlflow_store.client.set_registered_model_alias(NAME, "dev-canary", "2")

    assert sync.registry_reconcile().violations == 1
    assert sync.registry_reconcile().violations == 0  # the same open change is recorded once
    mlflow_store.client.set_registered_model_alias(NAME, "dev-canary", "3")
    assert sync.registry_reconcile().violations == 1

    assert mlflow_store.aliases(NAME) == {"dev-canary": 3}  # dev's default policy does not revert
    assert violations() == [("dev-canary", 2, 1, False), ("dev-canary", 3, 1, False)]
    assert entries("mlflow.alias_reverted") == []


def test_the_main_alias_moved_to_a_canary_still_rolling_out_is_out_of_band(
    mlflow_store: MlflowStore, model: RegisteredModel, omar: User, dev_reverts: Environment,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    promote(django_capture_on_commit_callbacks, omar, 1, dev_reverts)
    rollout = promote(django_capture_on_commit_callbacks, omar, 2, dev_reverts, strategy="canary")
    mlflow_store.client.set_registered_model_alias(NAME, "dev", "2")  # skipping the canary's verdict

    report = sync.registry_reconcile()

    assert (report.violations, report.aliases_reverted, report.deployments_completed) == (1, 1, 0)
    assert mlflow_store.aliases(NAME) == {"dev": 1, "dev-canary": 2}
    rollout.refresh_from_db()
    assert rollout.state == State.DEPLOYING and violations() == [("dev", 2, 1, True)]


def test_a_revert_does_not_overwrite_a_change_made_since_the_alias_was_read(
    mlflow_store: MlflowStore, model: RegisteredModel, omar: User, dev_reverts: Environment,
    django_capture_on_commit_callbacks: Capture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    promote(django_capture_on_commit_callbacks, omar, 1, dev_reverts, strategy="canary")
    mlflow_store.client.set_registered_model_alias(NAME, "dev-canary", "3")
    read = registry.alias_version

    def moved_meanwhile(name: str, alias: str) -> int | None:
        mlflow_store.client.set_registered_model_alias(name, alias, "2")
        return read(name, alias)

    monkeypatch.setattr(registry, "alias_version", moved_meanwhile)
    report = sync.registry_reconcile()

    assert (report.violations, report.aliases_reverted) == (1, 0)
    assert mlflow_store.aliases(NAME) == {"dev-canary": 2}  # left for the next reconcile to judge
    assert violations() == [("dev-canary", 3, 1, False)] and entries("mlflow.alias_reverted") == []


# --- legitimate rollouts and the races around them ------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_legit_rollout_in_progress_is_not_flagged(
    mlflow_store: MlflowStore, model: RegisteredModel, omar: User, dev_reverts: Environment,
    django_capture_on_commit_callbacks: Capture, strategy: str,
) -> None:
    promote(django_capture_on_commit_callbacks, omar, 1, dev_reverts)
    promote(django_capture_on_commit_callbacks, omar, 2, dev_reverts, strategy=strategy)

    assert_quiet_reconcile()
    assert mlflow_store.aliases(NAME) == {"dev": 1, f"dev-{strategy}": 2}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_rollout_whose_candidate_alias_is_not_set_yet_is_not_flagged(
    mlflow_store: MlflowStore, model: RegisteredModel, omar: User, dev_reverts: Environment,
    django_capture_on_commit_callbacks: Capture, strategy: str,
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as queued:  # apply_promotion not run yet
        request = services.promotion_request(user=omar, version=version(1), environment=dev_reverts,
                                             reason="ship it", strategy=strategy)
    services.promotion_deploy_start(request=request)  # the task started, its alias move is in flight

    assert_quiet_reconcile()
    assert mlflow_store.aliases(NAME) == {}
    for callback in queued:
        callback()
    assert mlflow_store.aliases(NAME) == {f"dev-{strategy}": 1}
    assert_quiet_reconcile()


def test_a_failed_rollout_whose_alias_removal_is_queued_is_not_flagged_within_the_grace(
    mlflow_store: MlflowStore, model: RegisteredModel, omar: User, dev_reverts: Environment,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    request = promote(django_capture_on_commit_callbacks, omar, 1, dev_reverts, strategy="canary")
    with django_capture_on_commit_callbacks(execute=False) as queued:  # remove_candidate_alias not run yet
        services.promotion_report_progress(actor=RUNTIME, request=request, status="failed", detail="p99 too high")

    assert_quiet_reconcile()
    assert mlflow_store.aliases(NAME) == {"dev-canary": 1}

    # The removal never ran and the grace is over: the leftover is flagged and removed.
    PromotionRequest.objects.filter(pk=request.pk).update(
        finished_at=timezone.now() - sync.ROLLBACK_GRACE - timedelta(seconds=1))
    report = sync.registry_reconcile()
    assert (report.violations, report.aliases_reverted) == (1, 1)
    assert mlflow_store.aliases(NAME) == {} and violations() == [("dev-canary", 1, None, True)]
    for callback in queued:
        callback()  # the late task finds nothing of its own to remove
    assert mlflow_store.aliases(NAME) == {}


def test_a_completed_rollout_removes_only_its_own_candidate_alias(
    mlflow_store: MlflowStore, model: RegisteredModel, omar: User, dev_reverts: Environment,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    first = promote(django_capture_on_commit_callbacks, omar, 1, dev_reverts, strategy="canary")
    second = promote(django_capture_on_commit_callbacks, omar, 2, dev_reverts, strategy="canary")
    assert mlflow_store.aliases(NAME) == {"dev-canary": 2}  # the newer rollout holds the candidate alias

    with django_capture_on_commit_callbacks(execute=True):
        services.promotion_report_progress(actor=RUNTIME, request=first, status="completed")

    first.refresh_from_db()
    assert first.state == State.DEPLOYED
    assert mlflow_store.aliases(NAME) == {"dev": 1, "dev-canary": 2}  # v2's canary goes on
    assert_quiet_reconcile()

    with django_capture_on_commit_callbacks(execute=True):
        services.promotion_report_progress(actor=RUNTIME, request=second, status="completed")
    assert mlflow_store.aliases(NAME) == {"dev": 2}
    assert_quiet_reconcile()

    mlflow_store.client.set_registered_model_alias(NAME, "dev-canary", "2")  # the finished canary, set again
    assert sync.registry_reconcile().violations == 1
    assert mlflow_store.aliases(NAME) == {"dev": 2} and violations() == [("dev-canary", 2, None, True)]


# --- look-alikes in an environment's namespace ---------------------------------------------------------------


def test_an_unmanaged_alias_in_an_environment_namespace_is_flagged_and_other_aliases_are_left_alone(
    mlflow_store: MlflowStore, model: RegisteredModel,
) -> None:
    mlflow_store.client.set_registered_model_alias(NAME, "production-blue", "2")  # a runtime might load it
    mlflow_store.client.set_registered_model_alias(NAME, "dev-experiment", "3")
    mlflow_store.client.set_registered_model_alias(NAME, "champion", "3")  # not in any environment's namespace
    mlflow_store.client.set_registered_model_alias(NAME, "productionblue", "3")

    report = sync.registry_reconcile()

    assert (report.violations, report.aliases_reverted) == (2, 1)
    assert violations() == [("dev-experiment", 3, None, False), ("production-blue", 2, None, True)]
    out_of_band = ComplianceViolation.objects.filter(kind="out_of_band_alias").order_by("pk")
    assert [v.details["environment"] for v in out_of_band] == ["dev", "production"]
    assert "governance manages no such alias" in ComplianceViolation.objects.get(
        details__alias="production-blue").summary
    # production's policy removed its look-alike; dev's does not revert
    assert mlflow_store.aliases(NAME) == {"dev-experiment": 3, "champion": 3, "productionblue": 3}
    assert_quiet_reconcile()


def test_the_longest_environment_alias_owns_a_look_alike(
    mlflow_store: MlflowStore, model: RegisteredModel, infosec: User, envs: dict[str, Environment],
) -> None:
    Environment.objects.create(name="production-eu", order=3, mlflow_alias="production-eu",
                               max_data_classification="confidential")
    mlflow_store.client.set_registered_model_alias(NAME, "production-eu-blue", "1")

    assert sync.registry_reconcile().violations == 1
    assert ComplianceViolation.objects.get(kind="out_of_band_alias").details["environment"] == "production-eu"


# --- complete_rollout between "set main alias" and promotion_alias_applied ------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_rollout_reported_completed_whose_main_alias_moved_is_not_flagged_within_the_grace(
    mlflow_store: MlflowStore, model: RegisteredModel, omar: User, dev_reverts: Environment,
    django_capture_on_commit_callbacks: Capture, strategy: str,
) -> None:
    promote(django_capture_on_commit_callbacks, omar, 1, dev_reverts)
    rollout = promote(django_capture_on_commit_callbacks, omar, 2, dev_reverts, strategy=strategy)
    with django_capture_on_commit_callbacks(execute=False) as queued:  # complete_rollout not run yet
        services.promotion_report_progress(actor=RUNTIME, request=rollout, status="completed")
    rollout.refresh_from_db()
    assert rollout.rollout_completing_at is not None
    # complete_rollout's first step ran; the reconcile runs before it records the deployment
    mlflow_store.client.set_registered_model_alias(NAME, "dev", "2")

    assert_quiet_reconcile()
    assert mlflow_store.aliases(NAME) == {"dev": 2, f"dev-{strategy}": 2}  # nothing put back

    for callback in queued:
        callback()  # the task finishes: recorded deployed, candidate alias removed
    rollout.refresh_from_db()
    assert rollout.state == State.DEPLOYED and mlflow_store.aliases(NAME) == {"dev": 2}
    assert_quiet_reconcile()


def test_a_completing_rollout_still_unrecorded_after_the_grace_is_flagged(
    mlflow_store: MlflowStore, model: RegisteredModel, omar: User, dev_reverts: Environment,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    promote(django_capture_on_commit_callbacks, omar, 1, dev_reverts)
    rollout = promote(django_capture_on_commit_callbacks, omar, 2, dev_reverts, strategy="canary")
    with django_capture_on_commit_callbacks(execute=False):  # complete_rollout never runs
        services.promotion_report_progress(actor=RUNTIME, request=rollout, status="completed")
    mlflow_store.client.set_registered_model_alias(NAME, "dev", "2")
    PromotionRequest.objects.filter(pk=rollout.pk).update(
        rollout_completing_at=timezone.now() - sync.ROLLOUT_COMPLETING_GRACE - timedelta(seconds=1))

    report = sync.registry_reconcile()

    assert (report.violations, report.aliases_reverted) == (1, 1)
    assert violations() == [("dev", 2, 1, True)] and mlflow_store.aliases(NAME) == {"dev": 1, "dev-canary": 2}
