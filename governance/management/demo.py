"""Demo data: a realistic fraud-model history in a real (local) MLflow registry, driven through the services.

Used by ``manage.py seed_demo`` only. Everything below goes through the same
services a user would call, so the ledger holds the whole story. The only
shortcut is moving a few staging deployment times back a few days (the demo
cannot wait out a 24-hour soak gate); that is flagged in the ledger as a note.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from access.models import Dataset, ReviewItem
from access.services.access_requests import access_request_create
from access.services.datasets import dataset_classify, dataset_create, dataset_field_classify
from access.services.grants import grant_create
from access.services.reviews import review_campaign_start, review_item_decide
from access.services.service_accounts import service_account_create
from audit.export.scope import parse_scope
from audit.export.service import export_create, export_run
from audit.ledger import Actor, Subject, record
from audit.models import Entry, PendingEntry
from audit.services.checkpoints import checkpoint_create
from audit.services.integrity import verification_run
from audit.services.retention import legal_hold_create
from governance import registry
from governance.models import (
    BreakGlassReview,
    Environment,
    LiveDeployment,
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
)
from governance.services import break_glass, deployments, identity_links, promotions, registered_models
from governance.services.registry_mirror import aliases_reconcile, registry_reconcile

FRAUD = "fraud-detector"
CHARGEBACK = "chargeback-risk"
SERVING = Actor.service("serving-platform")

# (auc, recall_at_1pct_fpr, dataset names, description)
FRAUD_VERSIONS = [
    (0.912, 0.61, ["card-transactions-2026q1"], "Gradient-boosted trees on card transactions; baseline."),
    (0.905, 0.58, ["card-transactions-2026q2"], "Retrained on Q2; adds merchant-category features."),
    (0.931, 0.66, ["card-transactions-2026q2", "device-fingerprints"], "Adds device fingerprint features."),
    (0.944, 0.69, ["card-transactions-2026q3", "device-fingerprints"], "Q3 retrain; catches new BIN attack."),
    (0.951, 0.71, ["card-transactions-2026q3", "chargebacks-2026q3"], "Adds chargeback labels; candidate."),
]
DATASETS = {
    "card-transactions-2026q1": "s3://payments-lake/curated/card_transactions/2026q1",
    "card-transactions-2026q2": "s3://payments-lake/curated/card_transactions/2026q2",
    "card-transactions-2026q3": "s3://payments-lake/curated/card_transactions/2026q3",
    "device-fingerprints": "s3://payments-lake/curated/device_fingerprints/v4",
    "chargebacks-2026q3": "s3://payments-lake/curated/chargebacks/2026q3",
}


# --- the data catalog (access.services.datasets): datasets classified by Dana, the data steward ------------
# (dataset, source URI, description, own level, own PII categories, fields: (name, level, PII categories)).
# Production allows up to confidential data: the card-transaction datasets carry tokenised PANs only, so the
# fraud models trained on them stay promotable; the raw PANs live in card-pan-vault (restricted), which no
# model is trained on.
CATALOG: list[tuple[str, str, str, str, list[str], list[tuple[str, str, list[str]]]]] = [
    *[
        (name, DATASETS[name], f"Curated card transactions, {name.rsplit('-', 1)[1].upper()}; PANs tokenised.",
         "confidential", [], [
             ("pan_token", "internal", []),
             ("customer_email", "confidential", ["email"]),
             ("ip_address", "confidential", ["ip_address"]),
             ("device_id", "confidential", ["device_id"]),
             ("amount", "internal", []),
         ])
        for name in ("card-transactions-2026q1", "card-transactions-2026q2", "card-transactions-2026q3")
    ],
    ("device-fingerprints", DATASETS["device-fingerprints"], "Device fingerprints of card-not-present checkouts.",
     "confidential", ["device_id", "ip_address"], [
         ("device_id", "confidential", ["device_id"]),
         ("ip_address", "confidential", ["ip_address"]),
     ]),
    ("chargebacks-2026q3", DATASETS["chargebacks-2026q3"], "Chargeback outcomes by transaction token, Q3.",
     "internal", [], []),
    ("card-pan-vault", "s3://payments-vault/pan/v1", "Raw card PANs (PCI DSS scope); detokenisation only.",
     "restricted", ["card_pan"], [("pan", "restricted", ["card_pan"])]),
]


def seed_catalog() -> None:
    """Register and classify the demo's datasets (as Dana), before the MLflow history names them as inputs."""
    dana = _user("dana")
    for name, uri, description, level, categories, fields in CATALOG:
        if Dataset.objects.filter(name=name).exists():
            continue
        dataset = dataset_create(actor=dana, name=name, owner=dana, source_uri=uri, description=description)
        for field_name, field_level, field_categories in fields:
            dataset_field_classify(
                actor=dana, dataset=dataset, field_name=field_name, level=field_level,
                pii_categories=field_categories, reason="Initial catalog review DG-2026-07.",
            )
        dataset_classify(
            actor=dana, dataset=dataset, level=level, pii_categories=categories,
            reason="Initial catalog review DG-2026-07.",
        )


def _mlflow_versions(name: str, versions: list[tuple[float, float, list[str], str]], creator: str) -> None:
    client = registry.client()
    artifacts = Path(settings.VAR_DIR) / "mlflow-artifacts"
    experiment = client.get_experiment_by_name(name)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(name, artifact_location=artifacts.resolve().as_uri())
    )
    try:
        client.get_registered_model(name)
    except registry.REGISTRY_ERRORS:
        client.create_registered_model(
            name, tags={"owner": creator, "team": "payments-risk"},
            description=f"{name}: scores card transactions for fraud risk.",
        )
    # Heavy (1-2 s): imported when the demo plays, not when any management command starts.
    from mlflow.entities import Dataset as MlflowDataset
    from mlflow.entities import DatasetInput, InputTag

    for auc, recall, datasets, description in versions:
        run = client.create_run(experiment_id, tags={"mlflow.user": creator}, run_name=f"{name}-train")
        run_id = run.info.run_id
        client.log_metric(run_id, "auc", auc)
        client.log_metric(run_id, "recall_at_1pct_fpr", recall)
        client.log_param(run_id, "algorithm", "lightgbm")
        client.log_param(run_id, "num_leaves", "63")
        client.log_inputs(
            run_id,
            datasets=[
                DatasetInput(
                    MlflowDataset(name=d, digest=f"{abs(hash(d)) % 10**8:08d}", source_type="s3",
                            source=f'{{"uri": "{DATASETS[d]}"}}'),
                    tags=[InputTag("mlflow.data.context", "training")],
                )
                for d in datasets
            ],
        )
        client.log_text(run_id, f"flavors:\n  python_function: {{}}\nauc: {auc}\n", "model/MLmodel")
        client.set_terminated(run_id)
        client.create_model_version(
            name, source=f"{run.info.artifact_uri}/model", run_id=run_id, description=description,
            tags={"data_classification": "confidential"},
        )


def _user(name: str) -> User:
    return User.objects.get(username=name)


def _env(name: str) -> Environment:
    return Environment.objects.get(name=name)


def _version(model: str, number: int) -> ModelVersion:
    return ModelVersion.objects.select_related("model").get(model__name=model, version=number)


@transaction.atomic
def _backdate_staging(version: ModelVersion, days: int) -> None:
    back = timezone.now() - timedelta(days=days)
    PromotionRequest.objects.filter(version=version, environment__name="staging", state="deployed").update(
        deployed_at=back
    )
    LiveDeployment.objects.filter(version=version, environment__name="staging").update(since=back)
    record(
        event_type="ledger.note_added",
        actor=Actor.system("demo-seed"),
        subject=Subject("model_version", version.ref),
        payload={"text": f"demo data: staging deployment time set {days} days back to satisfy the soak gate"},
    )


def seed_promotions() -> None:
    """Classify the datasets, create the MLflow history, mirror it (with lineage), and play the promotion story
    through the services."""
    seed_catalog()  # the reconcile links each version to these datasets (lineage from its MLflow inputs)
    omar, priya, sam, mira, bruno, alice = (_user(u) for u in ("omar", "priya", "sam", "mira", "bruno", "alice"))
    # Alice (InfoSec) vouches that MLflow's user "omar" is Omar's account: the mirror then knows who
    # registered each version. MLflow's tags (owner, data_classification) grant and set nothing.
    identity_links.identity_link_create(actor=alice, mlflow_identity="omar", account=omar,
                                        reason="MLflow SSO identity checked against the IdP (SEC-2026-77)")
    _mlflow_versions(FRAUD, FRAUD_VERSIONS, "omar")
    _mlflow_versions(CHARGEBACK, [(0.87, 0.52, ["chargebacks-2026q3"], "Predicts chargeback probability.")], "omar")
    registry_reconcile()
    for name in (FRAUD, CHARGEBACK):  # ownership is assigned here, never taken from MLflow's owner tag
        registered_models.model_owner_set(actor=alice, model=RegisteredModel.objects.get(name=name), owner=omar,
                                          reason="Owner of the fraud models per the model inventory (MRM-2026-Q4)")
    dev, staging, prod = _env("dev"), _env("staging"), _env("production")

    def to_staging(number: int, strategy: str = "full") -> PromotionRequest:
        version = _version(FRAUD, number)
        promotions.promotion_request(actor=omar, version=version, environment=dev, reason="nightly build passed")
        request = promotions.promotion_request(
            actor=omar, version=version, environment=staging, strategy=strategy,
            reason=f"v{number} for validation on shadow traffic",
        )
        promotions.promotion_approve(actor=priya, promotion=request, comment="Backtest and fairness report reviewed.")
        return request

    # v1: the whole way to production.
    to_staging(1)
    _backdate_staging(_version(FRAUD, 1), 10)
    v1_prod = promotions.promotion_request(
        actor=omar, version=_version(FRAUD, 1), environment=prod, reason="First production release of the model."
    )
    promotions.promotion_approve(actor=mira, promotion=v1_prod, comment="Model-risk validation MRV-114 complete.")
    promotions.promotion_approve(actor=sam, promotion=v1_prod, comment="Data access and PCI scope reviewed.")

    # v2: production rejected by model risk.
    to_staging(2)
    _backdate_staging(_version(FRAUD, 2), 6)
    v2_prod = promotions.promotion_request(
        actor=omar, version=_version(FRAUD, 2), environment=prod, reason="Q2 retrain with merchant features."
    )
    promotions.promotion_reject(
        actor=mira, promotion=v2_prod, comment="AUC regressed on the LATAM segment (0.87 vs 0.91); not approved."
    )

    # v3: a canary through staging, then production, then rolled back.
    v3_staging = to_staging(3, strategy="canary")
    for step in (5, 25, 50):
        deployments.promotion_report_progress(actor=SERVING, promotion=v3_staging, status="step", traffic_percent=step)
    deployments.promotion_report_progress(
        actor=SERVING, promotion=v3_staging, status="completed", detail="error rate and latency within SLO"
    )
    _backdate_staging(_version(FRAUD, 3), 3)
    v3_prod = promotions.promotion_request(
        actor=omar, version=_version(FRAUD, 3), environment=prod, reason="Device fingerprints improve recall."
    )
    promotions.promotion_approve(actor=mira, promotion=v3_prod, comment="MRV-131 complete.")
    promotions.promotion_approve(actor=sam, promotion=v3_prod, comment="Fingerprint dataset access approved (AR-88).")
    deployments.promotion_rollback(
        actor=omar, model=v3_prod.version.model, environment=prod,
        reason="p99 latency breached the 50 ms SLO after rollout; back to v1.",
    )

    # v4: break-glass during a fraud spike, with its post-hoc review still open.
    to_staging(4)
    break_glass.promotion_break_glass(
        actor=bruno, version=_version(FRAUD, 4), environment=prod,
        justification="INC-2291: new BIN attack, v1 misses it; losses rising. Emergency release of v4.",
    )

    # v5: waiting for an approver in staging.
    version5 = _version(FRAUD, 5)
    promotions.promotion_request(actor=omar, version=version5, environment=dev, reason="nightly build passed")
    promotions.promotion_request(
        actor=omar, version=version5, environment=staging, reason="Chargeback labels; candidate for Q4."
    )

    # Someone points chargeback-risk's production alias at v1 directly in MLflow, bypassing
    # governance: the reconcile records the violation and (production policy) reverts it.
    registry.set_alias(CHARGEBACK, "production", 1)
    aliases_reconcile(RegisteredModel.objects.get(name=CHARGEBACK))


def seed_access() -> None:
    """Grants (one expiring soon), a service account, a pending request for PCI data, and a review campaign."""
    dana, omar, priya, alice = (_user(u) for u in ("dana", "omar", "priya", "alice"))
    now = timezone.now()
    q3 = Dataset.objects.get(name="card-transactions-2026q3")
    fingerprints = Dataset.objects.get(name="device-fingerprints")
    grant_create(actor=dana, principal=omar, resource=q3, permission="train_on",
                 expires_at=now + timedelta(days=60), justification="Q4 retrain of fraud-detector (JIRA FRAUD-412)")
    grant_create(actor=dana, principal=omar, resource=fingerprints, permission="read_data",
                 expires_at=now + timedelta(days=3), justification="Feature analysis for device fingerprints")
    pipeline = service_account_create(actor=omar, name="fraud-training-pipeline",
                                       description="Nightly training of the fraud models (Airflow)")
    grant_create(actor=dana, principal=pipeline.user, resource=q3, permission="train_on",
                 expires_at=now + timedelta(days=90), justification="Nightly retraining job")
    grant_create(actor=alice, principal=priya, resource=_env("production"), permission="approve_promotion",
                 expires_at=now + timedelta(days=90), justification="Model-risk approver rota Q4")
    # Raw card numbers: needs the owner and InfoSec.
    access_request_create(
        actor=priya, resource=Dataset.objects.get(name="card-pan-vault"), permission="read_data", duration_days=7,
        justification="Investigate false negatives on BIN ranges 4571xx for INC-2291",
    )
    campaign = review_campaign_start(actor=alice, name="Q4 2026 access review", deadline=now + timedelta(days=14))
    first = ReviewItem.objects.filter(campaign=campaign, reviewer=dana).order_by("pk").first()
    if first is not None:
        review_item_decide(actor=dana, review_item=first, decision="certified",
                           comment="Still needed for the Q4 retrain.")


# --- two weeks of runtime history, so the console's charts and explorer have something to show -------------
# Recorded first, on an empty ledger only, oldest first: entry timestamps then rise with seq, which time-range
# exports rely on. These are the serving and monitoring systems' own events (POST /api/v1/events in real life),
# about the model version that was live in production before this demo's story begins.

HISTORY_DAYS = 14
MONITOR = Actor.service("model-monitor")
PAGER = Actor.service("incident-bot")


@transaction.atomic
def _runtime(event_type: str, actor: Actor, subject: Subject, at: datetime, **fields: Any) -> None:
    record(
        event_type=event_type, actor=actor, subject=subject, timestamp=at,
        payload={"source": actor.id, "occurred_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"), **fields},
    )


def seed_history(now: datetime | None = None) -> int:
    """Runtime events spread over the last two weeks (deterministic). Returns how many were recorded."""
    if Entry.objects.exists() or PendingEntry.objects.exists():
        return 0  # only ever before everything else: timestamps must not go backwards in the ledger
    rng = random.Random(2026)  # noqa: S311 - demo figures, deterministic on purpose
    now = now or timezone.now()
    start = (now - timedelta(days=HISTORY_DAYS)).replace(hour=6, minute=0, second=0, microsecond=0)
    live = Subject("model_version", f"{FRAUD}/0")
    where = {"model": FRAUD, "version": 0, "environment": "production"}
    events: list[tuple[datetime, str, Actor, Subject, dict[str, Any]]] = []
    for day in range(HISTORY_DAYS):
        moment = start + timedelta(days=day)
        for _ in range(rng.randint(8, 16)):
            moment += timedelta(minutes=rng.randint(10, 60))
            kind = rng.random()
            if kind < 0.2:
                events.append((moment, "deployment.traffic_shifted", SERVING, live, {
                    "traffic_percent": 100, "from_version": None, "detail": {"reason": "autoscaler rebalance"}}))
            elif kind < 0.3:
                events.append((moment, "deployment.shadow_started", SERVING, live, {
                    "detail": {"mirror_percent": 10, "shadow_of": "champion"}}))
            elif kind < 0.45:
                events.append((moment, "monitoring.data_drift_detected", MONITOR, live, {
                    "metric": "psi_merchant_category", "value": round(rng.uniform(0.21, 0.34), 3), "threshold": 0.2}))
            elif kind < 0.7:
                events.append((moment, "monitoring.prediction_drift_detected", MONITOR, live, {
                    "metric": "score_ks", "value": round(rng.uniform(0.11, 0.19), 3), "threshold": 0.1}))
            elif kind < 0.85:
                events.append((moment, "monitoring.slo_breached", MONITOR, live, {
                    "slo": "p99_latency_ms", "value": rng.randint(52, 75), "threshold": 50}))
            else:
                events.append((moment, "monitoring.data_quality_failed", MONITOR, live, {
                    "check": "amount_not_null", "failed_rows": rng.randint(3, 400)}))
        if day in (4, 9):
            incident = f"INC-22{40 + day}"
            subject = Subject("incident", incident)
            opened = moment + timedelta(minutes=30)
            events += [
                (opened, "incident.opened", PAGER, subject, {
                    "incident_id": incident, "severity": "sev3",
                    "summary": "Fraud score drift on card-not-present traffic"}),
                (opened + timedelta(hours=2), "incident.mitigated", PAGER, subject, {
                    "incident_id": incident, "summary": "Thresholds tuned; drift within bounds"}),
                (opened + timedelta(hours=20), "incident.closed", PAGER, subject, {
                    "incident_id": incident, "summary": "Post-incident review PIR-" + incident[4:]}),
            ]
    events = sorted((e for e in events if e[0] < now), key=lambda e: e[0])
    for at, event_type, actor, subject, fields in events:
        _runtime(event_type, actor, subject, at, **where, **fields)
    return len(events)


# --- after the story: what the console's dashboard lists --------------------------------------------------


def seed_operations() -> None:
    """Runtime events about the story, an overdue break-glass review, more queues, a finished export and a
    verification run. Runs once, after ``seed_promotions`` and ``seed_access``."""
    omar, priya, bruno, dana, arthur = (_user(u) for u in ("omar", "priya", "bruno", "dana", "arthur"))
    now = timezone.now()

    # The serving platform's and the pager's side of the story (v4's emergency release).
    v4 = Subject("model_version", f"{FRAUD}/4")
    prod = {"model": FRAUD, "version": 4, "environment": "production"}
    incident = Subject("incident", "INC-2291")
    _runtime("incident.opened", PAGER, incident, now, **prod, incident_id="INC-2291", severity="sev1",
             summary="New BIN attack: fraud losses rising on card-not-present")
    _runtime("deployment.traffic_shifted", SERVING, v4, now, **prod, traffic_percent=100, from_version=1)
    _runtime("incident.mitigated", PAGER, incident, now, **prod, incident_id="INC-2291",
             summary="v4 released under break-glass; losses back to baseline")
    _runtime("monitoring.prediction_drift_detected", MONITOR, v4, now, **prod, metric="score_ks", value=0.12,
             threshold=0.1)

    # A second break-glass (chargeback-risk into staging) whose review deadline has passed.
    emergency = break_glass.promotion_break_glass(
        actor=bruno, version=_version(CHARGEBACK, 1), environment=_env("staging"),
        justification="INC-2288: chargeback spike; staging replay needed before the weekend.",
    )
    with transaction.atomic():
        BreakGlassReview.objects.filter(request=emergency).update(due_at=now - timedelta(hours=6))
        record(
            event_type="ledger.note_added", actor=Actor.system("demo-seed"),
            subject=Subject("promotion_request", str(emergency.pk)),
            payload={"text": "demo data: review deadline moved 6 hours into the past to show an overdue review"},
        )
    break_glass.break_glass_reviews_flag_overdue()

    # More queues: a request waiting for Dana (owner of the chargeback data), a second grant expiring soon.
    chargebacks = Dataset.objects.get(name="chargebacks-2026q3")
    access_request_create(
        actor=omar, resource=chargebacks, permission="read_data", duration_days=30,
        justification="Label audit for the chargeback-risk model (FRAUD-430)",
    )
    grant_create(actor=dana, principal=priya, resource=chargebacks, permission="read_data",
                 expires_at=now + timedelta(days=5), justification="Validation of chargeback labels (MRV-140)")

    # A legal hold: the chargeback dispute behind INC-2288 keeps the personal data of the person who
    # released it out of retention's reach (console: Legal holds).
    legal_hold_create(actor=_user("alice"), data_subject=f"user:{bruno.pk}",
                      reason="Chargeback dispute with the acquirer over INC-2288; counsel asked to keep records",
                      reference="LEGAL-2026-031")

    # Arthur's regulator export of fraud-detector's history, written now (no worker in the demo).
    checkpoint_create()
    job = export_create(actor=arthur, scope=parse_scope(model=FRAUD), fmt="bundle", enqueue=False)
    export_run(export_id=job.pk)

    # A scheduled verification has run (the worker's beat does this every few minutes).
    checkpoint_create(only_if_grown=True)
    verification_run(mode="full")
