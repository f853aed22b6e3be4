"""A promotion's follow-up task lost after its change committed is queued again by the sweep, once (issue #16).

The loss is made by not running the after-commit hooks (``django_capture_on_commit_callbacks(execute=False)``):
exactly what a broker failing between ``require_broker`` and the publish leaves behind (the real broker
failure is tests/ops/test_fault_broker.py). The sweep (``web.follow_ups``) runs in-process with its clock
moved past the grace; Celery is eager, so a re-queued task runs in it. MLflow is the suite's FakeRegistry
(tests/governance/helpers.py), as in the other deploy tests: these are about our bookkeeping, not MLflow's.
"""
from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from audit.ledger import Actor, integrate
from audit.models import Entry
from governance import tasks
from governance.models import Environment, ModelVersion, PromotionRequest
from governance.services import deployments, follow_ups, promotions
from tests.governance.helpers import FakeRegistry, make_deployed
from tests.personas import People
from tests.settings_helpers import settings_environ, settings_module
from web import follow_ups as sweep_module
from web.follow_ups import MAX_GAP, REQUEUED, requeue_due, requeue_stalled_follow_ups

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_mlflow")]
State = PromotionRequest.State
Envs = dict[str, Environment]
Capture = Callable[..., Any]
GRACE = timedelta(seconds=120)
REASON = "Quarterly retrain with the new merchant-category features"
COMMENT = "Validation report MRV-2026-114 reviewed; metrics within tolerance"
MODEL = "fraud-detector"


@pytest.fixture(autouse=True)
def _grace(settings: Any) -> None:
    settings.FOLLOW_UP_GRACE_SECONDS = int(GRACE.total_seconds())


@pytest.fixture
def in_dev(v7: ModelVersion, envs: Envs, people: People) -> ModelVersion:
    make_deployed(v7, envs["dev"], requested_by=people.requester, hours_ago=72)
    return v7


@pytest.fixture
def v6_live(fraud: Any, envs: Envs, people: People, fake_registry: FakeRegistry) -> ModelVersion:
    """v6 serves fraud-detector in staging (and MLflow's alias says so)."""
    from tests.factories import ModelVersionFactory

    v6 = ModelVersionFactory(model=fraud, version=6)
    make_deployed(v6, envs["dev"], requested_by=people.requester, hours_ago=24 * 30)
    make_deployed(v6, envs["staging"], requested_by=people.requester, hours_ago=24 * 20)
    fake_registry.aliases[(MODEL, "staging")] = 6
    return v6


def fresh(request: PromotionRequest) -> PromotionRequest:
    return PromotionRequest.objects.select_related("version__model", "environment").get(pk=request.pk)


def ask(people: People, version: ModelVersion, environment: Environment, **kwargs: Any) -> PromotionRequest:
    return promotions.promotion_request(actor=people.requester, version=version, environment=environment,
                                        reason=REASON, **kwargs)


def deployed(people: People, version: ModelVersion, envs: Envs, capture: Capture, **kwargs: Any) -> PromotionRequest:
    with capture(execute=True):
        request = ask(people, version, envs["staging"], **kwargs)
        promotions.promotion_approve(actor=people.approver, promotion=request, comment=COMMENT)
    return fresh(request)


def ledger() -> list[tuple[str, str]]:
    integrate()
    return list(Entry.objects.order_by("seq").values_list("event_type", "subject_id"))


def later(seconds: float = 1) -> Any:
    """The sweep's clock: the grace (and ``seconds``) past now."""
    return timezone.now() + GRACE + timedelta(seconds=seconds)


def requeued(task: str) -> float:
    return float(REQUEUED.labels(task=task)._value.get())


def lose_the_approval(people: People, version: ModelVersion, envs: Envs, capture: Capture) -> PromotionRequest:
    request = ask(people, version, envs["staging"])
    with capture(execute=False) as lost:  # the change commits; its task is never published
        promotions.promotion_approve(actor=people.approver, promotion=request, comment=COMMENT)
    assert len(lost) == 1
    return fresh(request)


# --- each follow-up, lost and queued again ------------------------------------------------------------------


def test_an_approval_whose_deploy_was_lost_is_deployed_by_the_sweep_past_the_grace_exactly_once(
    in_dev: ModelVersion, envs: Envs, people: People, v6_live: ModelVersion, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture, caplog: pytest.LogCaptureFixture,
) -> None:
    request = lose_the_approval(people, in_dev, envs, django_capture_on_commit_callbacks)
    assert request.state == State.APPROVED and request.follow_up == follow_ups.APPLY_PROMOTION
    assert request.follow_up_since == request.follow_up_at is not None
    before = ledger()

    # within the grace (a worker may just be slow): nothing is touched
    assert requeue_stalled_follow_ups(now=timezone.now() + GRACE - timedelta(seconds=5)) == {
        "requeued": 0, "not_queued": 0, "dropped": 0}
    assert fresh(request).state == State.APPROVED and fresh(request).follow_up_at == request.follow_up_at
    assert fake_registry.calls == [] and ledger() == before

    # past it: queued again, logged once at WARNING, counted; the (eager) task deploys
    counted = requeued(follow_ups.APPLY_PROMOTION)
    with caplog.at_level(logging.WARNING, logger="web.follow_ups"):
        assert requeue_stalled_follow_ups(now=later())["requeued"] == 1
    done = fresh(request)
    assert done.state == State.DEPLOYED and (done.follow_up, done.follow_up_at) == ("", None)
    assert fake_registry.of(MODEL) == {"staging": 7}
    [logged] = [r for r in caplog.records if r.name == "web.follow_ups"]
    assert logged.levelno == logging.WARNING and re.fullmatch(
        rf"promotion #{request.pk}: follow-up {follow_ups.APPLY_PROMOTION} outstanding for 12[1-9]s "
        r"with no task running: queued again", logged.getMessage())
    assert requeued(follow_ups.APPLY_PROMOTION) == counted + 1
    # the sweep itself recorded nothing: the entries are the deployment's own, once each
    added = ledger()[len(before):]
    assert [t for t, _ in added] == ["promotion.deploy_started", "promotion.alias_applied", "promotion.deployed",
                                     "promotion.receipt_issued"]

    # and a sweep run again, even much later, does nothing more
    assert requeue_stalled_follow_ups(now=later(3600)) == {"requeued": 0, "not_queued": 0, "dropped": 0}
    assert len(ledger()) == len(before) + 4 and len(fake_registry.calls) == 1


def test_a_rollout_completion_a_candidate_removal_and_a_rollback_lost_are_each_done_by_the_sweep(
    in_dev: ModelVersion, envs: Envs, people: People, v6_live: ModelVersion, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    runtime = Actor.service("seldon-staging")
    canary = deployed(people, in_dev, envs, django_capture_on_commit_callbacks, strategy="canary")
    assert canary.state == State.DEPLOYING and canary.follow_up == ""  # apply_promotion finished: mark cleared

    # completed, its task lost: the sweep moves the main alias and records the deployment
    with django_capture_on_commit_callbacks(execute=False):
        deployments.promotion_report_progress(actor=runtime, promotion=canary, status="completed")
    assert fresh(canary).follow_up == follow_ups.COMPLETE_ROLLOUT
    assert requeue_stalled_follow_ups(now=later())["requeued"] == 1
    assert fresh(canary).state == State.DEPLOYED and fresh(canary).follow_up == ""
    assert fake_registry.of(MODEL) == {"staging": 7}

    # rolled back, its task lost: the sweep moves the alias back, recorded once
    with django_capture_on_commit_callbacks(execute=False):
        deployments.promotion_rollback(actor=people.requester, model=in_dev.model, environment=envs["staging"],
                                       reason="false positives doubled")
    assert fresh(canary).follow_up == follow_ups.APPLY_ROLLBACK
    assert requeue_stalled_follow_ups(now=later())["requeued"] == 1
    assert fake_registry.of(MODEL) == {"staging": 6} and fresh(canary).follow_up == ""
    assert [t for t, _ in ledger()].count("mlflow.alias_changed") == 1
    assert requeue_stalled_follow_ups(now=later(3600))["requeued"] == 0


def test_a_failed_rollout_whose_candidate_removal_was_lost_has_its_alias_removed_by_the_sweep(
    in_dev: ModelVersion, envs: Envs, people: People, v6_live: ModelVersion, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    canary = deployed(people, in_dev, envs, django_capture_on_commit_callbacks, strategy="canary")
    assert fake_registry.of(MODEL) == {"staging": 6, "staging-canary": 7}
    with django_capture_on_commit_callbacks(execute=False):
        deployments.promotion_report_progress(actor=Actor.service("seldon-staging"), promotion=canary,
                                              status="failed", detail="p99 over budget")
    assert fresh(canary).follow_up == follow_ups.REMOVE_CANDIDATE_ALIAS

    assert requeue_stalled_follow_ups(now=later())["requeued"] == 1

    assert fake_registry.of(MODEL) == {"staging": 6} and fresh(canary).follow_up == ""
    assert [t for t, _ in ledger()].count("mlflow.alias_changed") == 1


# --- stalled or slow ---------------------------------------------------------------------------------------


def test_a_task_that_started_an_attempt_is_left_alone_for_another_grace(
    in_dev: ModelVersion, envs: Envs, people: People, v6_live: ModelVersion, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    request = lose_the_approval(people, in_dev, envs, django_capture_on_commit_callbacks)
    # a worker picked the task up late (slow, not lost) and is still at it: its attempt stamps the mark
    started = timezone.now() + GRACE
    assert follow_ups.promotion_follow_up_attempt(promotion_id=request.pk, task=follow_ups.APPLY_PROMOTION,
                                                  now=started)

    assert requeue_stalled_follow_ups(now=started + GRACE - timedelta(seconds=1))["requeued"] == 0
    assert fresh(request).state == State.APPROVED and fake_registry.calls == []


def test_re_queues_of_one_follow_up_back_off_while_no_worker_takes_them(settings: Any) -> None:
    start = timezone.now()
    due, last = [], start
    for minute in range(1, 24 * 60):  # a sweep every minute for a day, no worker ever starting the task
        now = start + timedelta(minutes=minute)
        if requeue_due(since=start, last=last, now=now, grace=GRACE):
            due.append(minute)
            last = now
    assert due[:6] == [2, 4, 8, 16, 32, 64]  # the grace, then doubling
    gaps = {b - a for a, b in itertools.pairwise(due[5:])}
    assert gaps == {MAX_GAP.seconds // 60}  # then once an hour


def test_two_sweeps_at_once_queue_a_follow_up_once(
    in_dev: ModelVersion, envs: Envs, people: People, v6_live: ModelVersion, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    request = lose_the_approval(people, in_dev, envs, django_capture_on_commit_callbacks)
    [seen] = follow_ups.promotion_follow_ups_outstanding(stamped_before=later())  # both sweeps read the same mark
    now = later()

    assert follow_ups.promotion_follow_up_requeue_claim(outstanding=seen, now=now)
    assert not follow_ups.promotion_follow_up_requeue_claim(outstanding=seen, now=now)
    assert fresh(request).follow_up_at == now


def test_a_mark_the_state_no_longer_wants_is_cleared_without_queueing_anything(
    in_dev: ModelVersion, envs: Envs, people: People, v6_live: ModelVersion, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    # the registry reconcile completed an interrupted deployment: its task's mark outlived it
    request = deployed(people, in_dev, envs, django_capture_on_commit_callbacks)
    follow_ups.promotion_follow_up_request(promotion_id=request.pk, task=follow_ups.APPLY_PROMOTION)
    calls, before = list(fake_registry.calls), ledger()

    assert requeue_stalled_follow_ups(now=later()) == {"requeued": 0, "not_queued": 0, "dropped": 1}

    assert fresh(request).follow_up == "" and fake_registry.calls == calls and ledger() == before


def test_a_re_queue_the_broker_refuses_is_logged_and_tried_again_after_the_gap(
    in_dev: ModelVersion, envs: Envs, people: People, v6_live: ModelVersion, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    request = lose_the_approval(people, in_dev, envs, django_capture_on_commit_callbacks)
    from kombu.exceptions import OperationalError

    def refuse(*_: Any) -> None:  # the broker itself is tests/ops/test_fault_broker.py's: here, only its answer
        raise OperationalError("connection refused")

    first = later()
    with monkeypatch.context() as patched, caplog.at_level(logging.WARNING, logger="web.follow_ups"):
        refused = type("Refused", (), {"name": follow_ups.APPLY_PROMOTION, "delay": staticmethod(refuse)})()
        patched.setitem(sweep_module.FOLLOW_UP_TASKS, follow_ups.APPLY_PROMOTION, refused)
        assert requeue_stalled_follow_ups(now=first) == {"requeued": 0, "not_queued": 1, "dropped": 0}
    assert "could not be queued again (OperationalError)" in caplog.text
    assert fresh(request).state == State.APPROVED and fresh(request).follow_up_at == first

    # tried again once the gap has passed (as long as it had been outstanding: just over the grace)
    assert requeue_stalled_follow_ups(now=first + GRACE - timedelta(seconds=1))["requeued"] == 0
    assert requeue_stalled_follow_ups(now=first + GRACE + timedelta(seconds=5))["requeued"] == 1
    assert fresh(request).state == State.DEPLOYED


# --- the tasks are safe to run twice at once ---------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["full", "canary"])
def test_the_deploy_and_the_completion_run_twice_at_once_deploy_once(
    in_dev: ModelVersion, envs: Envs, people: People, v6_live: ModelVersion, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture, monkeypatch: pytest.MonkeyPatch, strategy: str,
) -> None:
    """The twin runs inside the first run's MLflow call, the worst moment: after the first moved the request
    to ``deploying`` and before it recorded the alias (a twin on another worker could start just then)."""
    if strategy == "full":
        request = lose_the_approval(people, in_dev, envs, django_capture_on_commit_callbacks)
        task = tasks.apply_promotion
    else:
        request = deployed(people, in_dev, envs, django_capture_on_commit_callbacks, strategy="canary")
        with django_capture_on_commit_callbacks(execute=False):
            deployments.promotion_report_progress(actor=Actor.service("rt"), promotion=request, status="completed")
        task = tasks.complete_rollout
    before = len(ledger())
    real_set = fake_registry.set_alias
    twin: dict[str, str] = {}

    def set_alias_with_a_twin(model: str, alias: str, version: int) -> None:
        if "started" not in twin:
            twin["started"] = "yes"
            twin["outcome"] = task(request.pk)  # the twin, start to end, while the first is mid-flight
        real_set(model, alias, version)

    monkeypatch.setattr("governance.registry.set_alias", set_alias_with_a_twin)
    first = task(request.pk)

    assert fresh(request).state == State.DEPLOYED and fresh(request).follow_up == ""
    assert twin["outcome"].startswith("staging -> ")  # the twin did it...
    assert first in ("already completed by the reconcile", "nothing to do any more")  # ...and the first saw it
    added = [t for t, s in ledger()[before:] if s == str(request.pk)]
    expected = ["promotion.alias_applied", "promotion.deployed"]
    # A canary's receipt was issued with its candidate alias, before this; a full rollout's with this one, once.
    assert added == (["promotion.deploy_started", *expected, "promotion.receipt_issued"] if strategy == "full"
                     else expected)
    assert fake_registry.of(MODEL) == {"staging": 7}


# --- settings ---------------------------------------------------------------------------------------------


def test_the_sweep_is_scheduled_by_typed_settings_that_refuse_nonsense(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    default = settings_module(monkeypatch, settings_environ(tmp_path))
    assert (default["FOLLOW_UP_SWEEP_INTERVAL"], default["FOLLOW_UP_GRACE_SECONDS"]) == (30.0, 120)
    entry = default["CELERY_BEAT_SCHEDULE"]["follow-ups-requeue-stalled"]
    assert entry["task"] == "web.tasks.requeue_stalled_follow_ups" and entry["schedule"] == timedelta(seconds=30)
    tuned = settings_module(monkeypatch, settings_environ(tmp_path, FOLLOW_UP_SWEEP_INTERVAL="10",
                                                          FOLLOW_UP_GRACE_SECONDS="300"))
    assert tuned["FOLLOW_UP_GRACE_SECONDS"] == 300
    assert tuned["CELERY_BEAT_SCHEDULE"]["follow-ups-requeue-stalled"]["schedule"] == timedelta(seconds=10)
    for bad in ({"FOLLOW_UP_SWEEP_INTERVAL": "0"}, {"FOLLOW_UP_GRACE_SECONDS": "soon"},
                {"FOLLOW_UP_GRACE_SECONDS": "5"}):
        with pytest.raises(ImproperlyConfigured) as refused:
            settings_module(monkeypatch, settings_environ(tmp_path, **bad))
        assert next(iter(bad)) in str(refused.value)
