"""Racing transitions on one promotion request, on PostgreSQL with real commits.

Each thread runs a service on its own connection (closed when it is done); a
barrier releases them together. The services lock the request row first, so
whatever the interleaving the outcome is one of the serial ones: one
``promotion.approved``, never an approval and a withdrawal that contradict
each other. The deploy task that follows an approval runs after commit, in the
approving thread, against the fake registry.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection

from audit.ledger import integrate
from audit.models import Entry, PendingEntry
from governance import registry, services
from governance.errors import InvalidState
from governance.models import Approval, Environment, LiveDeployment, ModelVersion, PromotionRequest, RegisteredModel
from tests.factories import ModelVersionFactory, RegisteredModelFactory
from tests.governance.helpers import FakeRegistry, ensure_defaults, make_deployed
from tests.personas import People, make_people

pytestmark = pytest.mark.usefixtures("on_postgres", "restore_defaults_after_flush", "committing_db")

State = PromotionRequest.State
ROUNDS = 5


class Worker(threading.Thread):
    """Runs ``target`` on its own connection once the barrier opens, keeping its result or error."""

    def __init__(self, target: Callable[[], Any], barrier: threading.Barrier) -> None:
        super().__init__(daemon=True)
        self._target_fn = target
        self._barrier = barrier
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._barrier.wait(timeout=10)
            self.result = self._target_fn()
        except BaseException as exc:
            self.error = exc
        finally:
            connection.close()

    def join_or_fail(self, timeout: float = 30) -> None:
        self.join(timeout)
        assert not self.is_alive(), "worker thread did not finish"


def race(*targets: Callable[[], Any]) -> list[Worker]:
    barrier = threading.Barrier(len(targets))
    workers = [Worker(t, barrier) for t in targets]
    for w in workers:
        w.start()
    for w in workers:
        w.join_or_fail()
    return workers


@pytest.fixture
def restore_defaults_after_flush(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Set up before ``committing_db``, so torn down after its flush: put the migration rows back for later tests."""
    yield
    with django_db_blocker.unblock():
        ensure_defaults()


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Environment], People, RegisteredModel, FakeRegistry]:
    fake = FakeRegistry()
    for name in ("set_alias", "delete_alias", "alias_version"):
        monkeypatch.setattr(registry, name, getattr(fake, name))
    monkeypatch.setattr(registry, "client", lambda: pytest.fail("this test must not contact MLflow"))
    envs = ensure_defaults()
    people = make_people()
    model = RegisteredModelFactory(name="fraud-detector")
    return envs, people, model, fake


def entries(request: PromotionRequest) -> list[Entry]:
    return list(Entry.objects.filter(subject_type="promotion_request", subject_id=str(request.pk)).order_by("seq"))


def version_in(model: RegisteredModel, number: int, envs: dict[str, Environment], people: People,
               *, staging: bool) -> ModelVersion:
    version = ModelVersionFactory(model=model, version=number)
    make_deployed(version, envs["dev"], requested_by=people.requester, hours_ago=96, live=False)
    if staging:
        make_deployed(version, envs["staging"], requested_by=people.requester, hours_ago=48, live=True)
    return version


def test_two_approvers_at_once_approve_exactly_once(world: Any) -> None:
    envs, people, model, fake = world
    for round_ in range(ROUNDS):
        version = version_in(model, 10 + round_, envs, people, staging=True)
        request = services.promotion_request(user=people.requester, version=version, environment=envs["production"],
                                             reason="quarterly retrain")
        workers = race(
            lambda r=request: services.promotion_approve(user=people.model_risk, request=r, comment="validated"),
            lambda r=request: services.promotion_approve(user=people.infosec, request=r, comment="validated"),
        )

        assert [w.error for w in workers] == [None, None]
        integrate()
        request.refresh_from_db()
        # approved, and the deploy task that followed (after commit, once) put it live
        assert request.state == State.DEPLOYED, round_
        assert Approval.objects.filter(request=request, decision="approve").count() == 2
        kinds = [e.event_type for e in entries(request)]
        assert kinds.count("promotion.approval_given") == 2
        assert kinds.count("promotion.approved") == 1
        assert kinds.count("promotion.deploy_started") == 1
        assert kinds.index("promotion.approved") > max(
            i for i, k in enumerate(kinds) if k == "promotion.approval_given")
        approved = next(e for e in entries(request) if e.event_type == "promotion.approved")
        assert approved.payload["approvers"] == sorted([str(people.model_risk.pk), str(people.infosec.pk)])
        assert LiveDeployment.objects.get(model=model, environment=envs["production"]).version == version
    assert [c for c in fake.calls if c[2] == "production"] == [
        ("set", "fraud-detector", "production", str(10 + r)) for r in range(ROUNDS)]
    assert PendingEntry.objects.count() == 0


def test_approve_racing_withdraw_leaves_one_consistent_outcome(world: Any) -> None:
    envs, people, model, fake = world
    outcomes = []
    for round_ in range(ROUNDS):
        version = version_in(model, 20 + round_, envs, people, staging=False)
        request = services.promotion_request(user=people.requester, version=version, environment=envs["staging"],
                                             reason="quarterly retrain")

        approver, withdrawer = race(
            lambda r=request: services.promotion_approve(user=people.approver, request=r, comment="validated"),
            lambda r=request: services.promotion_withdraw(user=people.requester, request=r, reason="superseded"),
        )

        integrate()
        request.refresh_from_db()
        kinds = [e.event_type for e in entries(request)]
        seq = {e.event_type: e.seq for e in entries(request)}
        for worker in (approver, withdrawer):
            assert worker.error is None or isinstance(worker.error, InvalidState), worker.error
        assert kinds.count("promotion.approved") <= 1 and kinds.count("promotion.withdrawn") <= 1
        if request.state == State.WITHDRAWN:
            assert withdrawer.error is None
            assert "promotion.deploy_started" not in kinds
            assert not LiveDeployment.objects.filter(promotion=request).exists()
            if approver.error is None:  # approved first, withdrawn before the deploy task ran
                assert seq["promotion.approved"] < seq["promotion.withdrawn"]
                outcomes.append("approved then withdrawn")
            else:  # withdrawn first: the approval was refused and left nothing behind
                assert "promotion.approved" not in kinds and "promotion.approval_given" not in kinds
                assert not Approval.objects.filter(request=request).exists()
                outcomes.append("withdrawn")
        else:
            # approved and deployed before the withdrawal could take the lock
            assert approver.error is None and isinstance(withdrawer.error, InvalidState)
            assert request.state == State.DEPLOYED
            assert "promotion.withdrawn" not in kinds
            assert kinds[-1] == "promotion.deployed"
            assert LiveDeployment.objects.get(environment=envs["staging"], model=model).promotion == request
            outcomes.append("deployed")
        assert len(outcomes) == round_ + 1
    assert PendingEntry.objects.count() == 0
    # whichever happened, the registry only moved for deployed requests
    deployed = PromotionRequest.objects.filter(environment=envs["staging"], state=State.DEPLOYED,
                                               version__model=model, reason="quarterly retrain")
    assert sorted(int(c[3]) for c in fake.calls if c[2] == "staging") == sorted(r.version.version for r in deployed)
