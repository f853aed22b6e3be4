"""The ledger event types the promotion-governance domain writes (registered from ``GovernanceConfig.ready()``).

The registry mirror of MLflow (``model.*``, ``mlflow.*``), environments and policies,
promotions, compliance violations, two-person change control (``governance_change.*``) and
the runtime events serving and monitoring systems send (``deployment.*``, ``monitoring.*``,
``incident.*``). The registry and its rules are the ledger's (``audit.event_types``).
"""
from __future__ import annotations

from audit.event_types import EventType, Field, registry

_r = registry.register
S = Field
OPT = Field(required=False)

# --- the model registry mirror (MLflow) ----------------------------------------------------------
_MV = {"model": S(), "version": Field("int")}
# Tags whose values can name a person (``owner``, ``mlflow.user``…, see governance.sync.PERSONAL_TAG_KEYS)
# and a version's MLflow ``creator`` are personal data: they travel in the ``personal_*`` / ``creator``
# fields below, which the commitment scheme keeps out of the hashed body.
_PERSONAL = Field("object", required=False, pii=True)
_PR = {"model": S(), "version": Field("int"), "environment": S()}
_GATES = Field("list")
_VIOLATION_SUBJECT = "promotion_request | registered_model | model_version | environment | ledger"

_r(EventType("model.registered", "A registered model first seen in MLflow.",
             {"model": S(), "description": OPT, "tags": Field("object", required=False),
              "personal_tags": _PERSONAL}, subject="registered_model"))
_r(EventType("model.changed", "A mirrored registered model changed in MLflow (description or tags).",
             {"model": S(), "changes": Field("object"), "personal_changes": _PERSONAL}, subject="registered_model"))
_r(EventType("model.version_registered", "A model version first seen in MLflow.",
             {**_MV, "run_id": S(), "source": S(), "artifact_digest": S(), "creator": Field(nullable=True, pii=True),
              "metrics": Field("object"), "datasets": Field("list")}, subject="model_version"))
_r(EventType("model.version_changed", "A mirrored model version changed in MLflow (evidence may be stale).",
             {**_MV, "changes": Field("object"), "personal_changes": _PERSONAL}, subject="model_version"))
_r(EventType("model.version_classified", "The classification of a version's training data was set.",
             {**_MV, "level": S(), "previous_level": Field(nullable=True), "reason": S()}, subject="model_version"))

# --- MLflow grants no rights (#13): ownership and trusted creator identities ------------------------------
# Accounts appear only as "user:<id>"; the MLflow identity string of a link is personal (committed).
_r(EventType("model.owner_set", "The owner of a registered model was assigned in this product (never from MLflow).",
             {"model": S(), "owner": S(), "previous_owner": Field(nullable=True), "reason": S()},
             subject="registered_model"))
_r(EventType("model.version_registrant_linked", "The account that registered a version became known.",
             {**_MV, "registered_by": S(), "via": S(), "link_id": Field("int", required=False),
              "token_id": Field("int", required=False)}, subject="model_version"))
_r(EventType("model.attestation_added",
             "A CI attestation (DSSE envelope or Sigstore bundle) was uploaded for a version; stored, not yet "
             "trusted: the attestation gate verifies it against the environment's trusted signers.",
             {**_MV, "attestation": S(), "kind": S(), "predicate_type": S(), "subject_digests": Field("list"),
              "key_ids": Field("list"), "binds_version": Field("bool")}, subject="model_version"))
_r(EventType("mlflow.identity_linked", "InfoSec linked an MLflow identity to an account.",
             {"link_id": Field("int"), "mlflow_identity": Field(pii=True), "account": S(), "reason": S()},
             subject="identity_link"))
_r(EventType("mlflow.identity_unlinked", "InfoSec removed the link of an MLflow identity to an account.",
             {"link_id": Field("int"), "account": S(), "reason": S()}, subject="identity_link"))

# --- environments and policies --------------------------------------------------------------------

# --- environments and policies --------------------------------------------------------------------
_r(EventType("policy.updated", "A promotion policy was created or replaced.",
             {"environment": S(), "model": Field(nullable=True), "rules": Field("object"), "created": Field("bool")},
             subject="environment"))
_r(EventType("environment.created", "An environment was added to the promotion path.",
             {"environment": S(), "order": Field("int"), "mlflow_alias": S(), "max_data_classification": S()},
             subject="environment"))
_r(EventType("environment.updated", "An environment's settings changed.",
             {"environment": S(), "changes": Field("object")}, subject="environment"))
_r(EventType("environment.freeze_declared", "A freeze window was declared for an environment.",
             {"environment": S(), "starts_at": S(), "ends_at": S(), "reason": S()}, subject="environment"))

# --- promotions -------------------------------------------------------------------------------------
_r(EventType("promotion.requested", "A promotion was requested; gates evaluated as evidence.",
             {**_PR, "strategy": S(), "canary_steps": Field("list"), "reason": S(), "evidence_digest": S(),
              "gates": _GATES}, subject="promotion_request"))
_r(EventType("promotion.evidence_changed", "A request's gate evidence changed; earlier approvals are stale.",
             {**_PR, "previous_digest": S(), "evidence_digest": S(), "gates": _GATES}, subject="promotion_request"))
_r(EventType("promotion.approval_given", "An approver approved a promotion request.",
             {**_PR, "group": S(), "comment": S(), "evidence_digest": S()}, subject="promotion_request"))
_r(EventType("promotion.approved", "Every approval rule and gate is satisfied: the request is approved.",
             {**_PR, "evidence_digest": S(), "approvers": Field("list"), "gates": _GATES}, subject="promotion_request"))
_r(EventType("promotion.rejected", "An approver rejected a promotion request.",
             {**_PR, "group": S(), "comment": S()}, subject="promotion_request"))
_r(EventType("promotion.changes_requested", "An approver asked the requester for changes; the request is closed.",
             {**_PR, "group": S(), "comment": S()}, subject="promotion_request"))
_r(EventType("promotion.withdrawn", "The requester withdrew a promotion request.", {**_PR, "reason": S()},
             subject="promotion_request"))
_r(EventType("promotion.expired", "A pending request expired without a decision.",
             {**_PR, "after_days": Field("int")}, subject="promotion_request"))
_r(EventType("promotion.deploy_started", "Deployment of an approved promotion started.",
             {**_PR, "strategy": S(), "alias": S(), "previous_version": Field("int", nullable=True)},
             subject="promotion_request"))
_r(EventType("promotion.alias_applied", "The MLflow alias now points at the promoted version.",
             {**_PR, "alias": S()}, subject="promotion_request"))
_r(EventType("promotion.deployed", "The promoted version is live in the environment.", {**_PR, "strategy": S()},
             subject="promotion_request"))
_r(EventType("promotion.deploy_failed", "Deployment of a promotion failed.", {**_PR, "error": S()},
             subject="promotion_request"))
_r(EventType("promotion.progress_reported", "A runtime reported rollout progress (canary step, shadow result).",
             {**_PR, "status": S(), "traffic_percent": Field("int"), "detail": Field(required=False)},
             subject="promotion_request"))
_r(EventType("promotion.rolled_back", "The environment was rolled back to the previously deployed version.",
             {**_PR, "reason": S(), "restored_version": Field("int", nullable=True)}, subject="promotion_request"))
_r(EventType("promotion.receipt_issued",
             "A signed deployment receipt was issued for a promotion whose alias was applied (docs/receipts.md).",
             {**_PR, "approval_event": S(), "approval_seq": Field("int"), "approval_hash": S(), "artifact": S(),
              "note_sha256": S(), "signer": S()}, subject="promotion_request"))
_r(EventType("promotion.receipt_refused",
             "No deployment receipt could be issued for a deployed promotion (the reason says why).",
             {**_PR, "reason": S()}, subject="promotion_request"))
_r(EventType("promotion.break_glass", "Emergency promotion without approvals; a post-hoc review is due.",
             {**_PR, "justification": S(), "review_due_at": S(), "gates": _GATES, "break_glass": Field("bool")},
             subject="promotion_request"))
_r(EventType("promotion.break_glass_reviewed", "A break-glass promotion's post-hoc review was approved.",
             {**_PR, "comment": S(), "late": Field("bool")}, subject="promotion_request"))

# --- break-glass consequences (issue #13, item 8e) ----------------------------------------------------
# A post-hoc review concluded the break-glass was not justified; "reverted": the release was rolled back
# or withdrawn by policy (the rollback itself is its own promotion.rolled_back / promotion.withdrawn entry).
_r(EventType("promotion.break_glass_found_unjustified",
             "A break-glass promotion's post-hoc review concluded it was not justified.",
             {**_PR, "comment": S(), "late": Field("bool"), "reverted": Field("bool")}, subject="promotion_request"))

# --- MLflow -----------------------------------------------------------------------------------------

# --- MLflow -----------------------------------------------------------------------------------------
_r(EventType("mlflow.webhook_received", "An MLflow webhook was accepted (a hint to re-sync).",
             {"delivery_id": S(), "entity": S(), "action": S(), "model": Field(nullable=True),
              "version": Field(required=False, nullable=True), "alias": Field(required=False, nullable=True)},
             subject="registered_model | webhook_endpoint"))

# No longer written (issue #3: anyone could flood the ledger with refusals); kept registered because
# history holds entries of it. Refusals are now counted and summarised (mlflow.webhook_refusals_summarised).
_r(EventType("mlflow.webhook_refused",
             "An MLflow webhook delivery was refused (no longer written: see mlflow.webhook_refusals_summarised).",
             {"delivery_id": Field(nullable=True), "reason": S(), "detail": S(), "remote_addr": Field(nullable=True)},
             subject="registered_model | webhook_endpoint"))
_r(EventType("mlflow.alias_changed", "An alias was set or removed in MLflow by this service.",
             {"model": S(), "alias": S(), "version": Field("int", nullable=True), "previous_version":
              Field("int", nullable=True), "reason": S()}, subject="registered_model"))
# What MLflow itself reports about an alias (a signed model_version_alias webhook delivery), recorded in the
# transaction that accepts the delivery: MLflow's word, whoever made the change. "mlflow.alias_changed" is a
# change this service made; the reconcile then judges the observation (compliance.violation, mlflow.alias_reverted).
_r(EventType("mlflow.alias_observed",
             "MLflow reported that an alias of a registered model now points at a version (or was deleted).",
             {"model": S(), "alias": S(), "version": Field("int", nullable=True), "action": S(), "delivery_id": S()},
             subject="registered_model"))
_r(EventType("mlflow.alias_reverted", "An out-of-band alias change in MLflow was reverted.",
             {"model": S(), "alias": S(), "found_version": Field("int", nullable=True),
              "restored_version": Field("int", nullable=True)}, subject="registered_model"))

# --- MLflow webhook refusals (issue #3) ---------------------------------------------------------------
# Refused deliveries come from unauthenticated callers: they are counted, not recorded one by one,
# and each closed interval becomes one entry per reason. Times are RFC 3339 UTC; no address, delivery
# id or other value sent by a caller is kept.
_r(EventType("mlflow.webhook_refusals_summarised",
             "MLflow webhook deliveries refused for one reason during one interval, counted.",
             {"reason": S(), "count": Field("int"), "first_at": S(), "last_at": S(), "window_start": S(),
              "interval_seconds": Field("int")}, subject="webhook_endpoint"))

# --- compliance --------------------------------------------------------------------------------------

# --- compliance --------------------------------------------------------------------------------------
# A violation's entries are about what it is about (the ledger itself for integrity violations).
_r(EventType("compliance.violation", "A compliance violation was detected.",
             {"violation_id": Field("int"), "kind": S(), "summary": S(), "details": Field("object"),
              "reverted": Field("bool")}, subject=_VIOLATION_SUBJECT))
_r(EventType("compliance.violation_acknowledged", "InfoSec acknowledged a violation.",
             {"violation_id": Field("int"), "kind": S(), "comment": S()}, subject=_VIOLATION_SUBJECT))

# --- runtime events from serving and monitoring systems (POST /api/v1/events) -----------------------------
# Each names the model version and environment when it has one; ``detail`` carries the
# sender's own context (an object, kept as sent). ``source`` is the reporting system.
# Their subject is ``model_version:<model>/<version>`` when they name both, else ``environment:<name>``,
# else ``runtime_source:<source>``.
_RT = {"source": S(), "occurred_at": S(), "model": Field(required=False, nullable=True),
       "version": Field("int", required=False, nullable=True), "environment": Field(required=False, nullable=True),
       "detail": Field("object", required=False)}
_RUNTIME_SUBJECT = "model_version | environment | runtime_source"
_NUM = Field("number")


def _rt(name: str, description: str, fields: dict[str, Field] | None = None) -> None:
    _r(EventType(name, description, {**_RT, **(fields or {})}, runtime=True, subject=_RUNTIME_SUBJECT))


_rt("deployment.canary_step_completed", "A canary rollout reached a traffic step.",
    {"step": Field("int"), "traffic_percent": Field("int")})
_rt("deployment.traffic_shifted", "Traffic between versions was shifted.",
    {"traffic_percent": Field("int"), "from_version": Field("int", required=False, nullable=True)})
_rt("deployment.shadow_started", "A version started receiving shadow traffic.")
_rt("deployment.shadow_stopped", "A version stopped receiving shadow traffic.", {"reason": OPT})
_rt("deployment.rolled_back", "A serving platform rolled a deployment back.",
    {"reason": S(), "to_version": Field("int", required=False, nullable=True)})
_rt("monitoring.data_drift_detected", "Input data drift crossed its threshold.",
    {"metric": S(), "value": _NUM, "threshold": _NUM})
_rt("monitoring.prediction_drift_detected", "Prediction drift crossed its threshold.",
    {"metric": S(), "value": _NUM, "threshold": _NUM})
_rt("monitoring.data_quality_failed", "A data quality check failed.",
    {"check": S(), "failed_rows": Field("int", required=False, nullable=True)})
_rt("monitoring.slo_breached", "A latency or error-rate SLO was breached.",
    {"slo": S(), "value": _NUM, "threshold": _NUM})
_rt("incident.opened", "An incident was opened.", {"incident_id": S(), "severity": S(), "summary": S()})
_rt("incident.mitigated", "An incident was mitigated.", {"incident_id": S(), "summary": OPT})
_rt("incident.closed", "An incident was closed.", {"incident_id": S(), "summary": OPT})

# --- two-person control over the rules of protected environments (governance.change_requests) -------------
# Accounts appear as "user:<id>" references only; "change" is the proposal exactly as applied.
_GC = {"change_request_id": Field("int"), "kind": S(), "environment": S(), "model": Field(nullable=True)}
_r(EventType("governance_change.requested", "A change to a protected environment's rules was proposed.",
             {**_GC, "change": Field("object"), "proposed_by": S(), "reason": S()}, subject="environment"))
_r(EventType("governance_change.approved", "A second InfoSec member approved a proposed change; it was applied.",
             {**_GC, "proposed_by": S(), "approved_by": S(), "comment": S()}, subject="environment"))
_r(EventType("governance_change.rejected", "A second InfoSec member rejected a proposed change.",
             {**_GC, "proposed_by": S(), "rejected_by": S(), "comment": S()}, subject="environment"))
_r(EventType("governance_change.withdrawn", "The proposer withdrew a proposed change.",
             {**_GC, "proposed_by": S(), "reason": S()}, subject="environment"))
_r(EventType("environment.protection_changed", "An environment's two-person protection was turned on or off.",
             {"environment": S(), "protected": Field("bool")}, subject="environment"))

# --- change requests expire (governance.change_requests.change_request_expire, CHANGE_REQUEST_EXPIRY_DAYS) ---------
# Written by the scheduler; the proposer appears as a "user:<id>" reference only.
_r(EventType("governance_change.expired", "A proposed change to a protected environment's rules was left pending "
             "past CHANGE_REQUEST_EXPIRY_DAYS and expired; it can no longer be approved.",
             {**_GC, "proposed_by": S(), "after_days": Field("int")}, subject="environment"))
