"""Demo data: a realistic fraud-model history in a real (local) MLflow registry, driven through the services.

Used by ``manage.py seed_demo`` only. Everything below goes through the same
services a user would call, so the ledger holds the whole story, played over the
last two weeks by a ``Timeline``: each step runs with Django's clock set back to
its own time (``django.utils.timezone.now``, which the services, the models and
the ledger read), so requests come before their approvals, deployments after
them, a soak gate is satisfied by days really elapsing in the story and a
break-glass review is overdue only once its due time has passed. The runtime
history (monitoring, serving, incidents) is recorded in between, in time order,
and a checkpoint is signed after each step as the beat would: entry times rise
with their sequence numbers, which time-range exports rely on.
"""
from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from access.models import Dataset, ReviewItem, ServiceAccount
from access.services.access_requests import access_request_create
from access.services.datasets import dataset_classify, dataset_create, dataset_field_classify
from access.services.grants import grant_create
from access.services.reviews import review_campaign_start, review_item_decide
from access.services.service_accounts import service_account_create
from audit.export.scope import parse_scope
from audit.export.service import export_create, export_run
from audit.ledger import Actor, Subject, record
from audit.services.checkpoints import checkpoint_create
from audit.services.integrity import verification_run
from audit.services.retention import legal_hold_create
from governance import registry
from governance.models import (
    Environment,
    ModelVersion,
    PromotionRequest,
    RegisteredModel,
)
from governance.services import (
    admission,
    break_glass,
    change_requests,
    deployments,
    environments,
    identity_links,
    promotions,
    registered_models,
)
from governance.services.registry_mirror import aliases_reconcile, registry_reconcile

FRAUD = "fraud-detector"
STAGING_NAMESPACE, PROD_NAMESPACE = "fraud-staging", "fraud-prod"
ADMISSION_ACCOUNT = "k8s-admission-webhook"
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


# --- the timeline: the story played over the last two weeks ---------------------------------------------------

HISTORY_DAYS = 14
MONITOR = Actor.service("model-monitor")
PAGER = Actor.service("incident-bot")
RuntimeEvent = tuple[datetime, str, Actor, Subject, dict[str, Any]]


class Timeline:
    """Django's clock set back to each step of the demo, with the runtime history recorded in between.

    ``at(when)`` records the history events before ``when``, sets the clock to ``when`` and signs a checkpoint
    of what came before (the beat signs every few seconds in real life); the clock then ticks at the real pace
    until the next step. ``close()`` records the rest of the history up to the real now and gives
    the real clock back. Steps must come in time order (a step earlier than the clock is a bug: refused).

    The clock is ``django.utils.timezone.now`` replaced for the duration: every service, model field
    (``auto_now_add``) and ledger entry of this process reads it. Demo only: nothing else runs in a
    ``seed_demo`` process. Witnesses (``dev.py demo`` starts one) are not asked during the replay: they
    cosign at their own, real time, which a back-dated checkpoint would see as a cosignature from the
    future (refused). ``close()`` signs one checkpoint at the real now, submitted to them as usual; a
    witness accepts any larger consistent size, so that one covers the whole history.
    """

    def __init__(self, now: datetime, history: list[RuntimeEvent]) -> None:
        self.real_now = now
        self._real = timezone.now
        self._witnesses = settings.LEDGER_WITNESSES
        self._history = deque(sorted((e for e in history if e[0] < now), key=lambda e: e[0]))
        self._at: datetime | None = None
        self._set_at = 0.0

    def now(self) -> datetime:
        if self._at is None:
            return self._real()
        return self._at + timedelta(seconds=time.monotonic() - self._set_at)

    def day(self, days_ago: int, hour: int, minute: int = 0) -> datetime:
        """``hour:minute`` UTC, ``days_ago`` days before today."""
        return (self.real_now - timedelta(days=days_ago)).replace(hour=hour, minute=minute, second=0, microsecond=0)

    def hours_ago(self, hours: float) -> datetime:
        return self.real_now - timedelta(hours=hours)

    def at(self, when: datetime) -> None:
        if self._at is not None and when < self.now():
            raise ValueError(f"demo step at {when:%Y-%m-%d %H:%M} comes before the clock ({self.now():%Y-%m-%d %H:%M})")
        self._record_history(until=when)
        self._at, self._set_at = when, time.monotonic()
        timezone.now = self.now
        settings.LEDGER_WITNESSES = []
        checkpoint_create(only_if_grown=True)

    def close(self) -> None:
        self._record_history(until=self.real_now)
        self._restore()
        checkpoint_create()

    def _restore(self) -> None:
        self._at = None
        timezone.now = self._real
        settings.LEDGER_WITNESSES = self._witnesses

    def _record_history(self, *, until: datetime) -> None:
        while self._history and self._history[0][0] < until:
            at, event_type, actor, subject, fields = self._history.popleft()
            # A history event falling within the seconds a step took comes right after it, not before.
            _runtime(event_type, actor, subject, max(at, self.now()), **fields)

    def __enter__(self) -> Timeline:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            self._restore()
            return
        self.close()


@transaction.atomic
def _runtime(event_type: str, actor: Actor, subject: Subject, at: datetime, **fields: Any) -> None:
    record(
        event_type=event_type, actor=actor, subject=subject, timestamp=at,
        payload={"source": actor.id, "occurred_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"), **fields},
    )


def history_events(now: datetime) -> list[RuntimeEvent]:
    """Runtime events spread over the last two weeks (deterministic): the serving and monitoring systems' own
    events (POST /api/v1/events in real life) about the version live in production before the story begins."""
    rng = random.Random(2026)  # noqa: S311 - demo figures, deterministic on purpose
    start = (now - timedelta(days=HISTORY_DAYS)).replace(hour=6, minute=0, second=0, microsecond=0)
    live = Subject("model_version", f"{FRAUD}/0")
    where = {"model": FRAUD, "version": 0, "environment": "production"}
    events: list[RuntimeEvent] = []
    for day in range(HISTORY_DAYS):
        moment = start + timedelta(days=day)
        for _ in range(rng.randint(8, 16)):
            moment += timedelta(minutes=rng.randint(10, 60))
            kind = rng.random()
            if kind < 0.2:
                fields: dict[str, Any] = {"traffic_percent": 100, "from_version": None,
                                          "detail": {"reason": "autoscaler rebalance"}}
                events.append((moment, "deployment.traffic_shifted", SERVING, live, fields))
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
    return [(at, event_type, actor, subject, {**where, **fields}) for at, event_type, actor, subject, fields in events]


# --- the story ---------------------------------------------------------------------------------------------


def seed_promotions(timeline: Timeline) -> None:
    """Classify the datasets, create the MLflow history, mirror it (with lineage), and play the promotion story
    through the services, from 13 days ago to yesterday evening."""
    t = timeline
    t.at(t.day(13, 9))
    seed_catalog()  # the reconcile links each version to these datasets (lineage from its MLflow inputs)
    omar, priya, sam, mira, bruno, alice = (_user(u) for u in ("omar", "priya", "sam", "mira", "bruno", "alice"))
    # Alice (InfoSec) vouches that MLflow's user "omar" is Omar's account: the mirror then knows who
    # registered each version. MLflow's tags (owner, data_classification) grant and set nothing.
    t.at(t.day(13, 11))
    identity_links.identity_link_create(actor=alice, mlflow_identity="omar", account=omar,
                                        reason="MLflow SSO identity checked against the IdP (SEC-2026-77)")
    _mlflow_versions(FRAUD, FRAUD_VERSIONS, "omar")
    _mlflow_versions(CHARGEBACK, [(0.87, 0.52, ["chargebacks-2026q3"], "Predicts chargeback probability.")], "omar")
    registry_reconcile()
    t.at(t.day(13, 14))
    for name in (FRAUD, CHARGEBACK):  # ownership is assigned here, never taken from MLflow's owner tag
        registered_models.model_owner_set(actor=alice, model=RegisteredModel.objects.get(name=name), owner=omar,
                                          reason="Owner of the fraud models per the model inventory (MRM-2026-Q4)")
    dev, staging, prod = _env("dev"), _env("staging"), _env("production")
    # The Kubernetes namespaces each environment governs (the admission webhook, docs/admission.md): staging's
    # directly, production's (a protected environment) only with a second InfoSec person's approval.
    t.at(t.day(13, 15))
    environments.environment_update(actor=alice, environment=staging, kubernetes_namespaces=[STAGING_NAMESPACE])
    proposal = change_requests.change_request_create(
        actor=alice, environment=prod, kind="environment_update",
        change={"kubernetes_namespaces": [PROD_NAMESPACE]},
        reason="The serving cluster's namespace for the fraud models (PLAT-118)",
    )
    t.at(t.day(13, 16))
    change_requests.change_request_approve(actor=sam, change_request=proposal,
                                           comment="Namespace checked against the cluster inventory.")
    # The webhook's machine principal (its API token, scope admission:review, only InfoSec may issue).
    service_account_create(actor=alice, name=ADMISSION_ACCOUNT,
                           description="The serving cluster's ValidatingAdmissionWebhook (docs/admission.md)")

    def to_staging(number: int, requested: datetime, strategy: str = "full") -> PromotionRequest:
        """Requested (dev, then staging) at ``requested``, approved 90 minutes later, then deployed."""
        version = _version(FRAUD, number)
        t.at(requested)
        promotions.promotion_request(actor=omar, version=version, environment=dev, reason="nightly build passed")
        request = promotions.promotion_request(
            actor=omar, version=version, environment=staging, strategy=strategy,
            reason=f"v{number} for validation on shadow traffic",
        )
        t.at(requested + timedelta(minutes=90))
        promotions.promotion_approve(actor=priya, promotion=request, comment="Backtest and fairness report reviewed.")
        return request

    # v1: the whole way to production, after two days' soak in staging.
    to_staging(1, t.day(12, 10))
    t.at(t.day(10, 14))
    v1_prod = promotions.promotion_request(
        actor=omar, version=_version(FRAUD, 1), environment=prod, reason="First production release of the model."
    )
    t.at(t.day(10, 16))
    promotions.promotion_approve(actor=mira, promotion=v1_prod, comment="Model-risk validation MRV-114 complete.")
    t.at(t.day(9, 10))
    promotions.promotion_approve(actor=sam, promotion=v1_prod, comment="Data access and PCI scope reviewed.")

    # v2: production rejected by model risk.
    to_staging(2, t.day(8, 10))
    t.at(t.day(6, 11))
    v2_prod = promotions.promotion_request(
        actor=omar, version=_version(FRAUD, 2), environment=prod, reason="Q2 retrain with merchant features."
    )
    t.at(t.day(6, 15))
    promotions.promotion_reject(
        actor=mira, promotion=v2_prod, comment="AUC regressed on the LATAM segment (0.87 vs 0.91); not approved."
    )

    # v3: a canary through staging, then production, then rolled back.
    v3_staging = to_staging(3, t.day(5, 10), strategy="canary")
    for hour, step in ((12, 5), (13, 25), (14, 50)):
        t.at(t.day(5, hour))
        deployments.promotion_report_progress(actor=SERVING, promotion=v3_staging, status="step", traffic_percent=step)
    t.at(t.day(5, 15))
    deployments.promotion_report_progress(
        actor=SERVING, promotion=v3_staging, status="completed", detail="error rate and latency within SLO"
    )
    t.at(t.day(3, 10))
    v3_prod = promotions.promotion_request(
        actor=omar, version=_version(FRAUD, 3), environment=prod, reason="Device fingerprints improve recall."
    )
    t.at(t.day(3, 12))
    promotions.promotion_approve(actor=mira, promotion=v3_prod, comment="MRV-131 complete.")
    t.at(t.day(3, 14))
    promotions.promotion_approve(actor=sam, promotion=v3_prod, comment="Fingerprint dataset access approved (AR-88).")
    t.at(t.day(2, 9))
    deployments.promotion_rollback(
        actor=omar, model=v3_prod.version.model, environment=prod,
        reason="p99 latency breached the 50 ms SLO after rollout; back to v1.",
    )

    # A break-glass of chargeback-risk into staging 30 hours ago: its 24-hour review is overdue by now.
    t.at(t.hours_ago(30))
    break_glass.promotion_break_glass(
        actor=bruno, version=_version(CHARGEBACK, 1), environment=staging,
        justification="INC-2288: chargeback spike; staging replay needed before the weekend.",
    )

    # v4: to staging, then a break-glass into production during a fraud spike, its review still open (due in 4 h).
    to_staging(4, t.hours_ago(26))
    v4 = Subject("model_version", f"{FRAUD}/4")
    v4_prod = {"model": FRAUD, "version": 4, "environment": "production"}
    incident = Subject("incident", "INC-2291")
    t.at(t.hours_ago(21))
    _runtime("incident.opened", PAGER, incident, t.now(), **v4_prod, incident_id="INC-2291", severity="sev1",
             summary="New BIN attack: fraud losses rising on card-not-present")
    t.at(t.hours_ago(20))
    break_glass.promotion_break_glass(
        actor=bruno, version=_version(FRAUD, 4), environment=prod,
        justification="INC-2291: new BIN attack, v1 misses it; losses rising. Emergency release of v4.",
    )
    # The serving platform's and the pager's side of it.
    t.at(t.hours_ago(19.5))
    _runtime("deployment.traffic_shifted", SERVING, v4, t.now(), **v4_prod, traffic_percent=100, from_version=1)
    # The cluster's admission webhook lets the v4 Deployment in (break-glass, review open: with a warning).
    _admit(4, "CREATE")
    t.at(t.hours_ago(18))
    _runtime("incident.mitigated", PAGER, incident, t.now(), **v4_prod, incident_id="INC-2291",
             summary="v4 released under break-glass; losses back to baseline")
    t.at(t.hours_ago(17))
    _runtime("monitoring.prediction_drift_detected", MONITOR, v4, t.now(), **v4_prod, metric="score_ks", value=0.12,
             threshold=0.1)

    # Someone re-applies the old v3 manifest in production: the webhook refuses it (v4 is the approved one).
    t.at(t.hours_ago(10))
    _admit(3, "UPDATE")

    # v5: waiting for an approver in staging.
    t.at(t.hours_ago(8))
    version5 = _version(FRAUD, 5)
    promotions.promotion_request(actor=omar, version=version5, environment=dev, reason="nightly build passed")
    promotions.promotion_request(
        actor=omar, version=version5, environment=staging, reason="Chargeback labels; candidate for Q4."
    )

    # Someone points chargeback-risk's production alias at v1 directly in MLflow, bypassing
    # governance: the reconcile records the violation and (production policy) reverts it.
    t.at(t.hours_ago(7))
    registry.set_alias(CHARGEBACK, "production", 1)
    aliases_reconcile(RegisteredModel.objects.get(name=CHARGEBACK))


def _admit(version: int, operation: str) -> None:
    """An AdmissionReview of the fraud API's Deployment naming ``version``, as the cluster's API server sends it
    to the webhook (docs/admission.md), answered and recorded by the same service as ``POST
    /api/v1/admission/review``, under the webhook's service account."""
    webhook = ServiceAccount.objects.get(name=ADMISSION_ACCOUNT).user
    digest = _version(FRAUD, version).artifact_digest
    annotations = {"governance.ml/model": FRAUD, "governance.ml/version": str(version),
                   "governance.ml/artifact-digest": digest}  # stored as sha256:<hex>, as annotated
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "fraud-api", "namespace": PROD_NAMESPACE, "annotations": annotations},
        "spec": {"template": {"metadata": {"annotations": annotations},
                              "spec": {"containers": [{"name": "server", "image": "registry.internal/fraud-api:2"}]}}},
    }
    kind = {"group": "apps", "version": "v1", "kind": "Deployment"}
    resource = {"group": "apps", "version": "v1", "resource": "deployments"}
    admission.admission_review(actor=webhook, document={
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": f"demo-{version}-{operation.lower()}", "kind": kind, "resource": resource,
                    "requestKind": kind, "requestResource": resource, "name": "fraud-api",
                    "namespace": PROD_NAMESPACE, "operation": operation,
                    "userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller"},
                    "object": deployment, "oldObject": deployment if operation == "UPDATE" else None,
                    "dryRun": False},
    })


def seed_access(timeline: Timeline) -> None:
    """Grants (one expiring soon), a service account, a pending request for PCI data, and a review campaign."""
    t = timeline
    dana, omar, priya, alice = (_user(u) for u in ("dana", "omar", "priya", "alice"))
    t.at(t.hours_ago(6))
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
    t.at(t.hours_ago(5.5))
    access_request_create(
        actor=priya, resource=Dataset.objects.get(name="card-pan-vault"), permission="read_data", duration_days=7,
        justification="Investigate false negatives on BIN ranges 4571xx for INC-2291",
    )
    t.at(t.hours_ago(5.25))
    campaign = review_campaign_start(actor=alice, name="Q4 2026 access review",
                                     deadline=timezone.now() + timedelta(days=14))
    first = ReviewItem.objects.filter(campaign=campaign, reviewer=dana).order_by("pk").first()
    if first is not None:
        t.at(t.hours_ago(5.1))
        review_item_decide(actor=dana, review_item=first, decision="certified",
                           comment="Still needed for the Q4 retrain.")


def seed_operations(timeline: Timeline) -> None:
    """The overdue break-glass review flagged, more queues, a legal hold, a finished export and a verification
    run. Runs once, after ``seed_promotions`` and ``seed_access``, over the last five hours."""
    t = timeline
    omar, priya, bruno, dana, arthur = (_user(u) for u in ("omar", "priya", "bruno", "dana", "arthur"))

    # The scheduled sweep flags the chargeback-risk break-glass review: due six hours ago, never concluded.
    t.at(t.hours_ago(5))
    break_glass.break_glass_reviews_flag_overdue()

    # More queues: a request waiting for Dana (owner of the chargeback data), a second grant expiring soon.
    t.at(t.hours_ago(4))
    chargebacks = Dataset.objects.get(name="chargebacks-2026q3")
    access_request_create(
        actor=omar, resource=chargebacks, permission="read_data", duration_days=30,
        justification="Label audit for the chargeback-risk model (FRAUD-430)",
    )
    t.at(t.hours_ago(3.5))
    grant_create(actor=dana, principal=priya, resource=chargebacks, permission="read_data",
                 expires_at=timezone.now() + timedelta(days=5),
                 justification="Validation of chargeback labels (MRV-140)")

    # A legal hold: the chargeback dispute behind INC-2288 keeps the personal data of the person who
    # released it out of retention's reach (console: Legal holds).
    t.at(t.hours_ago(3))
    legal_hold_create(actor=_user("alice"), data_subject=f"user:{bruno.pk}",
                      reason="Chargeback dispute with the acquirer over INC-2288; counsel asked to keep records",
                      reference="LEGAL-2026-031")

    # Arthur's regulator export of fraud-detector's history (the export runs in this process: no worker).
    t.at(t.hours_ago(1))
    checkpoint_create(only_if_grown=True)
    job = export_create(actor=arthur, scope=parse_scope(model=FRAUD), fmt="bundle", enqueue=False)
    export_run(export_id=job.pk)

    # A scheduled verification has run (the beat does this every few minutes).
    t.at(t.hours_ago(0.5))
    checkpoint_create(only_if_grown=True)
    verification_run(mode="full")


def seed_story(setup: Callable[[], None], now: datetime | None = None) -> None:
    """The whole demo on an empty ledger: ``setup`` (the users) at the start of the two weeks, the history and
    the story after it, each at its own time; the clock is the real one again afterwards."""
    now = now or timezone.now()
    with Timeline(now, history_events(now)) as timeline:
        timeline.at(timeline.day(HISTORY_DAYS, 5))
        setup()
        seed_promotions(timeline)
        seed_access(timeline)
        seed_operations(timeline)
