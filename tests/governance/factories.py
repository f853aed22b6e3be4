"""factory-boy factories and setup helpers for the promotion-governance tests.

Setup that the tests are not about (a version already deployed in staging two
days ago, the default environments) is written through the ORM directly and
records nothing in the ledger; everything under test goes through
``governance.services``.
"""
from __future__ import annotations

import importlib
import secrets
from datetime import timedelta

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone

from access.roles import MODEL_RISK, ROLES
from governance.models import (
    Environment,
    LiveDeployment,
    ModelVersion,
    PromotionPolicy,
    PromotionRequest,
    RegisteredModel,
)

_defaults = importlib.import_module("governance.migrations.0002_default_environments")
#: The default policies the data migration installs, by environment name.
DEFAULT_POLICIES: dict[str, dict] = _defaults.POLICIES

MODEL_CARD = "Gradient-boosted fraud scorer for card-not-present payments; trained on 2025 transactions."


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
                      "description": description},
        )
        PromotionPolicy.objects.get_or_create(environment=env, model=None, defaults={"rules": DEFAULT_POLICIES[name]})
        envs[name] = env
    return envs


class RegisteredModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RegisteredModel
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"model-{n}")
    description = "A registered model mirrored from MLflow."
    owner = None


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    model = factory.SubFactory(RegisteredModelFactory)
    version = factory.Sequence(lambda n: n + 1)
    run_id = factory.LazyFunction(lambda: secrets.token_hex(16))
    source = factory.LazyAttribute(lambda o: f"mlflow-artifacts:/1/{o.run_id}/artifacts/model")
    artifact_digest = factory.LazyFunction(lambda: "sha256:" + secrets.token_hex(32))
    creator = "ds-creator"
    description = MODEL_CARD
    metrics = factory.LazyFunction(lambda: {"auc": 0.93, "precision": 0.81})
    data_classification = "internal"
    mlflow_status = "READY"


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
    from audit.models import Entry, PendingEntry
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


def subject_entries(request: PromotionRequest) -> list:
    """The integrated ledger entries about ``request``, in seq order."""
    from audit.ledger import integrate
    from audit.models import Entry

    integrate()
    return list(Entry.objects.filter(subject_type="promotion_request", subject_id=str(request.pk)).order_by("seq"))


def event_types(request: PromotionRequest) -> list[str]:
    return [e.event_type for e in subject_entries(request)]


def entry_of(request: PromotionRequest, event_type: str):  # noqa: ANN201 - audit.models.Entry
    """The one entry of ``event_type`` about ``request`` (fails if there is not exactly one)."""
    found = [e for e in subject_entries(request) if e.event_type == event_type]
    assert len(found) == 1, f"expected one {event_type} entry for #{request.pk}, got {len(found)}"
    return found[0]


def actor_of(user: User) -> dict[str, str]:
    return {"type": "user", "id": str(user.pk)}
