"""Setup and assertion helpers of the promotion-governance tests (the factories are in tests/factories.py).

Setup that the tests are not about (a version already deployed in staging two
days ago, the default environments) is written through the ORM directly and
records nothing in the ledger; everything under test goes through
``governance.services``.
"""
from __future__ import annotations

import importlib
import threading
from datetime import timedelta

from django.contrib.auth.models import Group, User
from django.utils import timezone

from access.roles import MODEL_RISK, ROLES
from audit.models import Entry
from governance.models import (
    Environment,
    LiveDeployment,
    ModelVersion,
    PromotionPolicy,
    PromotionRequest,
)

_defaults = importlib.import_module("governance.migrations.0002_default_environments")
#: The default policies the data migration installs, by environment name.
DEFAULT_POLICIES: dict[str, dict] = _defaults.POLICIES


def ensure_defaults() -> dict[str, Environment]:
    """The role groups, dev/staging/production and their default policies, as the migrations create them.

    ``committing_db`` tests flush the database (migration rows included), so fixtures
    put these back rather than rely on them being there.
    """
    for name in (*ROLES, MODEL_RISK):
        Group.objects.get_or_create(name=name)
    envs = {}
    for name, order, alias, ceiling, description in _defaults.ENVIRONMENTS:
        env, _ = Environment.objects.get_or_create(
            name=name,
            defaults={"order": order, "mlflow_alias": alias, "max_data_classification": ceiling,
                      "description": description, "protected": name == "production"},  # as migration 0006
        )
        PromotionPolicy.objects.get_or_create(environment=env, model=None, defaults={"rules": DEFAULT_POLICIES[name]})
        envs[name] = env
    return envs


def make_deployed(
    version: ModelVersion,
    environment: Environment,
    *,
    requested_by: User,
    hours_ago: float = 48,
    live: bool = True,
    strategy: str = PromotionRequest.Strategy.FULL,
    previous_version: ModelVersion | None = None,
) -> PromotionRequest:
    """A promotion of ``version`` to ``environment`` that finished deploying ``hours_ago`` (ORM setup only)."""
    at = timezone.now() - timedelta(hours=hours_ago)
    request = PromotionRequest.objects.create(
        version=version,
        environment=environment,
        requested_by=requested_by,
        state=PromotionRequest.State.DEPLOYED,
        strategy=strategy,
        reason="set up by the test",
        previous_version=previous_version,
        traffic_percent=100,
        decided_at=at,
        deployed_at=at,
    )
    PromotionRequest.objects.filter(pk=request.pk).update(created_at=at - timedelta(hours=1))
    if live:
        LiveDeployment.objects.update_or_create(
            model=version.model, environment=environment,
            defaults={"version": version, "promotion": request, "since": at},
        )
    return request


# --- assertions shared by the promotion tests -----------------------------------------------


def snapshot() -> dict[str, object]:
    """Every governance row and the ledger's size: equal before and after a refused action."""
    from audit.models import PendingEntry
    from governance.models import (
        Approval,
        BreakGlassReview,
        ComplianceViolation,
        FreezeWindow,
    )

    def rows(model: type) -> list[dict]:
        return list(model.objects.order_by("pk").values())

    return {
        "requests": rows(PromotionRequest),
        "approvals": rows(Approval),
        "live": rows(LiveDeployment),
        "reviews": rows(BreakGlassReview),
        "violations": rows(ComplianceViolation),
        "freezes": rows(FreezeWindow),
        "policies": [{k: v for k, v in r.items() if k != "updated_at"} for r in rows(PromotionPolicy)],
        "environments": rows(Environment),
        "versions": rows(ModelVersion),
        "pending_entries": PendingEntry.objects.count(),
        "entries": Entry.objects.count(),
    }


def subject_entries(request: PromotionRequest) -> list[Entry]:
    """The integrated ledger entries about ``request``, in seq order."""
    from audit.ledger import integrate

    integrate()
    return list(Entry.objects.filter(subject_type="promotion_request", subject_id=str(request.pk)).order_by("seq"))


def event_types(request: PromotionRequest) -> list[str]:
    return [e.event_type for e in subject_entries(request)]


def entry_of(request: PromotionRequest, event_type: str) -> Entry:
    """The one entry of ``event_type`` about ``request`` (fails if there is not exactly one)."""
    found = [e for e in subject_entries(request) if e.event_type == event_type]
    assert len(found) == 1, f"expected one {event_type} entry for #{request.pk}, got {len(found)}"
    return found[0]


def actor_of(user: User) -> dict[str, str]:
    return {"type": "user", "id": str(user.pk)}


# --- the fake registry ---------------------------------------------------------------------------


class FakeRegistry:
    """Stands in for governance.registry (MLflow aliases as a dict); thread-safe for the concurrency tests."""

    def __init__(self) -> None:
        self.aliases: dict[tuple[str, str], int] = {}
        self.calls: list[tuple[str, ...]] = []
        # Registry calls raise ``fail_with`` while ``fail_times`` > 0 (None: every call).
        self.fail_with: BaseException | None = None
        self.fail_times: int | None = None
        self._lock = threading.Lock()

    def _maybe_fail(self) -> None:
        if self.fail_with is None:
            return
        if self.fail_times is None:
            raise self.fail_with
        if self.fail_times > 0:
            self.fail_times -= 1
            raise self.fail_with

    def set_alias(self, model: str, alias: str, version: int) -> None:
        with self._lock:
            self._maybe_fail()
            self.calls.append(("set", model, alias, str(version)))
            self.aliases[(model, alias)] = int(version)

    def delete_alias(self, model: str, alias: str) -> None:
        with self._lock:
            self._maybe_fail()
            self.calls.append(("delete", model, alias))
            self.aliases.pop((model, alias), None)

    def alias_version(self, model: str, alias: str) -> int | None:
        with self._lock:
            self._maybe_fail()
            return self.aliases.get((model, alias))

    def of(self, model: str) -> dict[str, int]:
        """Every alias of ``model`` and its version."""
        return {alias: v for (m, alias), v in self.aliases.items() if m == model}


# --- two-person control over the rules (change requests) ------------------------------------

ZERO = {"approvals": [], "gates": []}
# Above the default production floor (2 approvals, 24h soak, data_classification): a legitimate change.
TIGHTER = {"approvals": [{"group": "model-risk", "count": 1}, {"group": "infosec", "count": 1}],
           "gates": [{"type": "soak", "hours": 48}, {"type": "data_classification"}]}


def production_rules() -> object:
    from governance.models import PromotionPolicy

    return PromotionPolicy.objects.get(environment__name="production", model=None).rules


def rules_state() -> dict[str, object]:
    """The ledger's size and every row the rules are made of: equal before and after a refused change."""
    from audit.models import PendingEntry
    from governance.models import Environment, FreezeWindow, GovernanceChangeRequest, PromotionPolicy

    def of(model: type) -> list[dict[str, object]]:
        return [{k: v for k, v in r.items() if k != "updated_at"}
                for r in model.objects.order_by("pk").values()]  # type: ignore[attr-defined]

    return {"pending": PendingEntry.objects.count(), "entries": Entry.objects.count(),
            "changes": of(GovernanceChangeRequest), "policies": of(PromotionPolicy),
            "environments": of(Environment), "freezes": of(FreezeWindow)}
