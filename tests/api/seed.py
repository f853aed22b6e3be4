"""Realistic data for the schemathesis run and the API benchmark.

People with roles, a model with versions live in dev and staging, datasets of every
classification, grants and access requests, pending promotion requests waiting for an
approver, a service account with a token carrying every scope, runtime events, and an
integrated, checkpointed ledger, so that paths with ids hit real objects.

Roles, datasets and versions are set up through the ORM (what the tests are not about);
promotions, grants, access requests, service accounts and tokens go through the services,
so the ledger holds their entries. Works on SQLite (inside ``committing_db``) and on
PostgreSQL (bench/api.py), on an empty database after ``migrate``.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Group, User
from django.utils import timezone

from access import roles

PASSWORD = "seed-password-not-secret"


@dataclass
class Seeded:
    token: str  # plaintext of a token carrying every scope
    people: dict[str, User]
    approvers: list[User]
    model: str
    versions: list[int]
    pending_promotions: list[int]  # staging requests waiting for one approver
    promotions: list[int]  # every promotion request id
    environments: list[str]
    datasets: list[int]
    grants: list[int]
    access_requests: list[int]
    service_account: str
    token_ids: list[int]
    event_ids: list[str]
    entries: int  # ledger size after integrating
    path_values: dict[str, Any] = field(default_factory=dict)  # path parameter → a real value


def _user(username: str, *role_names: str, password: bool = True) -> User:
    user, created = User.objects.get_or_create(username=username)
    if created:
        # Hashing is slow on purpose outside the tests; the bench's many approvers use sessions only.
        user.set_password(PASSWORD) if password else user.set_unusable_password()
        user.save(update_fields=["password"])
    if role_names:
        user.groups.add(*Group.objects.filter(name__in=role_names))
    return user


def _ensure_roles() -> None:
    for name in (*roles.ROLES, roles.MODEL_RISK):
        Group.objects.get_or_create(name=name)


def _deployed(version: Any, environment: Any, *, by: User, hours_ago: float) -> Any:
    """A finished deployment (ORM setup, like tests/governance/helpers.make_deployed)."""
    from governance.models import LiveDeployment, PromotionRequest

    at = timezone.now() - timedelta(hours=hours_ago)
    request = PromotionRequest.objects.create(
        version=version, environment=environment, requested_by=by, state=PromotionRequest.State.DEPLOYED,
        strategy=PromotionRequest.Strategy.FULL, reason="seeded deployment", traffic_percent=100,
        decided_at=at, deployed_at=at,
    )
    LiveDeployment.objects.update_or_create(
        model=version.model, environment=environment,
        defaults={"version": version, "promotion": request, "since": at},
    )
    return request


def runtime_event(model: str, version: int, *, n: int = 0) -> dict[str, Any]:
    """One valid runtime event for POST /api/v1/events (a fresh event_id each call)."""
    kinds: list[dict[str, Any]] = [
        {"type": "deployment.canary_step_completed", "step": 1 + n % 4, "traffic_percent": 5 * (1 + n % 4)},
        {"type": "monitoring.data_drift_detected", "metric": "psi", "value": 0.31, "threshold": 0.2},
        {"type": "monitoring.slo_breached", "slo": "p99_latency_ms", "value": 180.0, "threshold": 150.0},
        {"type": "incident.opened", "incident_id": f"INC-{n}", "severity": "sev3", "summary": "drift alert"},
    ]
    return {
        "event_id": str(uuid.uuid4()),
        "source": "seldon-prod",
        "occurred_at": timezone.now().isoformat(),
        "model": model,
        "version": version,
        "environment": "staging",
        "detail": {"cluster": "eu-west-1", "n": n},
        **kinds[n % len(kinds)],
    }


def seed(*, versions: int = 6, pending: int = 4, approvers: int = 2, events: int = 20,
         checkpoint: bool = True) -> Seeded:
    """Seed an empty (migrated) database; ``pending`` staging promotions wait for ``approvers``."""
    from access.models import Dataset, DatasetField, ServiceAccount
    from access.services.access_requests import access_request_create
    from access.services.grants import grant_create
    from access.services.reviews import review_campaign_start
    from access.services.service_accounts import service_account_create
    from access.services.tokens import SCOPES, api_token_create
    from audit.ledger import integrate
    from audit.models import Entry
    from governance.models import Environment, ModelVersion, PromotionRequest, RegisteredModel
    from governance.services import promotions as promotion_services

    _ensure_roles()
    owner = _user("olga", roles.MODEL_OWNER)
    people = {
        "owner": owner,
        "infosec": _user("ines", roles.INFOSEC),
        "auditor": _user("audrey", roles.AUDITOR),
        "steward": _user("sam", roles.DATA_STEWARD),
        "model_risk": _user("mira", roles.MODEL_RISK),
        "outsider": _user("otto"),
    }
    approver_users = [_user(f"approver-{i:03d}", roles.APPROVER, password=False) for i in range(approvers)]
    envs = {e.name: e for e in Environment.objects.all()}

    model, _ = RegisteredModel.objects.get_or_create(
        name="fraud-detector",
        defaults={"owner": owner, "description": "Gradient-boosted fraud scorer for card-not-present payments."},
    )
    made: list[ModelVersion] = []
    for v in range(1, versions + 1):
        mv, _ = ModelVersion.objects.get_or_create(
            model=model, version=v,
            defaults={"run_id": f"{v:032x}", "source": f"mlflow-artifacts:/1/{v:032x}/artifacts/model",
                      "artifact_digest": "sha256:" + f"{v:02x}" * 32, "creator": "ds-creator",
                      "description": "Card fraud scorer, trained on 2025 transactions.",
                      "metrics": {"auc": 0.9 + v / 1000}, "data_classification": "internal",
                      "mlflow_status": "READY"},
        )
        made.append(mv)
    # v1 in production, v2 in staging (soaked), every version live-able in dev.
    _deployed(made[0], envs["production"], by=owner, hours_ago=24 * 30)
    _deployed(made[1 % len(made)], envs["staging"], by=owner, hours_ago=72)
    for mv in made:
        _deployed(mv, envs["dev"], by=owner, hours_ago=96)

    # Pending staging requests, one per version beyond v2 (cycling models if more are asked for).
    pending_ids: list[int] = []
    extra_models = 0
    queue = list(made[2:])
    while len(pending_ids) < pending:
        if not queue:
            extra_models += 1
            other, _ = RegisteredModel.objects.get_or_create(
                name=f"scorer-{extra_models:04d}", defaults={"owner": owner, "description": "Seeded scorer."})
            mv, _ = ModelVersion.objects.get_or_create(
                model=other, version=1,
                defaults={"run_id": f"{extra_models:032x}", "creator": "ds-creator",
                          "description": "Seeded scorer.", "data_classification": "internal",
                          "mlflow_status": "READY", "artifact_digest": "sha256:" + "cd" * 32})
            _deployed(mv, envs["dev"], by=owner, hours_ago=96)
            queue.append(mv)
        mv = queue.pop(0)
        request = promotion_services.promotion_request(actor=owner, version=mv, environment=envs["staging"],
                                                       reason="Offline metrics within tolerance; bias report attached.")
        pending_ids.append(request.pk)

    datasets = []
    for name, level, pii in (("fx-rates", "public", []), ("payments-internal", "internal", []),
                             ("customers", "confidential", ["email"]), ("kyc-documents", "restricted",
                                                                       ["national_id"])):
        ds, _ = Dataset.objects.get_or_create(
            name=name, defaults={"owner": owner, "level": level, "effective_level": level, "pii_categories": pii})
        datasets.append(ds)
    DatasetField.objects.get_or_create(dataset=datasets[2], name="email",
                                       defaults={"level": "confidential", "pii_categories": ["email"]})

    account = ServiceAccount.objects.filter(name="pipeline").first() or service_account_create(
        actor=owner, name="pipeline", description="CI/CD and the serving platform")
    now = timezone.now()
    grants = [
        # InfoSec grants the pipeline: its owner may not (a person's service accounts count as them)
        grant_create(actor=people["infosec"], principal=account.user, resource=model,
                                     permission="view_metadata", expires_at=now + timedelta(days=30),
                                     justification="the pipeline reads the model it deploys"),
        grant_create(actor=owner, principal=people["steward"], resource=datasets[1],
                                     permission="read_data", expires_at=now + timedelta(days=30),
                                     justification="quarterly data quality review"),
    ]
    grants.append(grant_create(
        actor=people["infosec"], principal=account.user, resource=datasets[2], permission="view_metadata",
        expires_at=now + timedelta(days=30), justification="the pipeline checks the schema of its inputs"))
    grants.append(grant_create(
        actor=people["infosec"], principal=people["steward"], resource=datasets[2], permission="read_data",
        expires_at=now + timedelta(days=30), justification="customer data quality review"))
    campaign = review_campaign_start(actor=people["infosec"], name="Q4 access review",
                                                     deadline=now + timedelta(days=14))
    item = campaign.items.order_by("pk").first()
    access_requests = [
        access_request_create(actor=owner, resource=datasets[2], permission="read_data",
                                              duration_days=7, justification="retraining on Q3 customers"),
    ]
    # InfoSec issues it: admission:review is among the scopes, and only InfoSec may issue that one.
    issued = api_token_create(actor=people["infosec"], service_account=account, name="seed-all-scopes",
                              scopes=sorted(SCOPES), expires_in_days=30)

    event_ids: list[str] = []
    if events:
        from governance.services.runtime_events import runtime_events_record

        batch = [runtime_event(model.name, made[1 % len(made)].version, n=i) for i in range(events)]
        runtime_events_record(events=batch, **_runtime_actor(account))
        event_ids = [e["event_id"] for e in batch]

    integrate()
    if checkpoint:
        from audit.services.checkpoints import checkpoint_create

        checkpoint_create()
    size = Entry.objects.count()
    promotions = list(PromotionRequest.objects.order_by("pk").values_list("pk", flat=True))
    values: dict[str, Any] = {
        "name": model.name, "model": model.name, "version": made[-1].version, "environment": "staging",
        "env": "staging", "promotion_id": pending_ids[0], "request_id": access_requests[0].pk,
        "dataset_id": datasets[1].pk, "grant_id": grants[0].pk, "token_id": issued.token.pk,
        "account": account.name, "service_account": account.name, "seq": max(0, size - 1),
        "tree_size": size, "size": size, "event_id": event_ids[0] if event_ids else str(uuid.uuid4()),
        "campaign_id": campaign.pk, "review_campaign": campaign.pk, "item_id": item.pk if item else 1,
        # (segment, parameter) pairs where the parameter's name alone is ambiguous
        "datasets.name": datasets[2].name, "fields.field": "email", "service-accounts.name": account.name,
        "environments.name": "staging", "models.name": model.name, "policies.environment": "staging",
    }
    return Seeded(
        token=issued.plaintext, people=people, approvers=approver_users, model=model.name,
        versions=[mv.version for mv in made], pending_promotions=pending_ids, promotions=promotions,
        environments=sorted(envs), datasets=[d.pk for d in datasets], grants=[g.pk for g in grants],
        access_requests=[r.pk for r in access_requests], service_account=account.name,
        token_ids=[issued.token.pk], event_ids=event_ids, entries=size, path_values=values,
    )


def _runtime_actor(account: Any) -> dict[str, Any]:
    from audit.ledger import Actor

    return {"actor": Actor.user(account.user), "default_source": account.name}
