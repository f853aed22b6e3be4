"""The one registry of ledger event types.

Every entry's ``event_type`` must be registered here, with the shape of its
payload. Names are stable identifiers (``<domain>.<past_tense_verb>``): once an
entry has been written with a name, renaming it would orphan history, so names
are only ever added. ``record()`` refuses an unknown type or a payload that does
not match.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any


class UnknownEventType(ValueError):
    pass


class InvalidPayload(ValueError):
    pass


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "number": (int, float),
    "bool": (bool,),
    "object": (dict,),
    "list": (list,),
    "any": (str, int, float, bool, dict, list, type(None)),
}


@dataclass(frozen=True)
class Field:
    kind: str = "str"
    required: bool = True
    nullable: bool = False
    # Personal data: later kept out of the hashed body (crypto-shredding).
    pii: bool = False


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    fields: Mapping[str, Field] = field(default_factory=dict)
    # Runtime events accept extra keys (systems send their own context).
    open_payload: bool = False
    # Runtime events may be sent by serving/monitoring systems through POST /api/v1/events;
    # every other type is written only by this product's own services.
    runtime: bool = False
    # The entry's subject type(s), " | "-separated (catalogue metadata: docs/event-types.md, event-types.json).
    # Set for every type by ``Registry.describe_subjects`` at the end of this module.
    subject: str = ""

    def validate(self, payload: Mapping[str, Any]) -> None:
        problems: list[str] = []
        for key, spec in self.fields.items():
            if key not in payload:
                if spec.required:
                    problems.append(f"'{key}' is required")
                continue
            value = payload[key]
            if value is None:
                if not spec.nullable:
                    problems.append(f"'{key}' must not be null")
                continue
            allowed = _JSON_TYPES[spec.kind]
            # bool is an int in Python; JSON keeps them apart.
            if (isinstance(value, bool) and spec.kind in ("int", "number")) or not isinstance(value, allowed):
                problems.append(f"'{key}' must be of type {spec.kind}")
        if not self.open_payload:
            extra = sorted(set(payload) - set(self.fields))
            if extra:
                problems.append("unknown field(s): " + ", ".join(repr(k) for k in extra))
        if problems:
            raise InvalidPayload(f"invalid payload for {self.name}: " + "; ".join(problems))

    @property
    def pii_fields(self) -> tuple[str, ...]:
        return tuple(k for k, f in self.fields.items() if f.pii)

    @property
    def subject_types(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.subject.split("|") if t.strip())


class Registry:
    def __init__(self) -> None:
        self._types: dict[str, EventType] = {}

    def register(self, event_type: EventType) -> EventType:
        if event_type.name in self._types:
            raise ValueError(f"event type {event_type.name} is registered twice")
        parts = event_type.name.split(".")
        if len(parts) != 2 or not all(p and p.replace("_", "").isalnum() and p.islower() for p in parts):
            raise ValueError(f"event type name {event_type.name!r} must look like 'domain.snake_case'")
        self._types[event_type.name] = event_type
        return event_type

    def get(self, name: str) -> EventType:
        try:
            return self._types[name]
        except KeyError:
            raise UnknownEventType(f"unknown event type {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def names(self) -> list[str]:
        return sorted(self._types)

    def runtime_names(self) -> list[str]:
        return sorted(n for n, t in self._types.items() if t.runtime)

    def all(self) -> list[EventType]:
        return [self._types[n] for n in self.names()]

    def describe_subjects(self, subjects: Mapping[str, str]) -> None:
        """Set each type's subject type(s) (catalogue metadata); every registered type needs one."""
        unknown = sorted(set(subjects) - set(self._types))
        missing = sorted(set(self._types) - set(subjects))
        if unknown or missing:
            raise ValueError(f"subject types: unknown event types {unknown}, types without one {missing}")
        for name, subject in subjects.items():
            self._types[name] = replace(self._types[name], subject=subject)


registry = Registry()
_r = registry.register
S = Field
OPT = Field(required=False)

# --- the ledger itself --------------------------------------------------------------
_r(EventType("ledger.signing_key_registered", "A checkpoint signing key was first used.",
             {"verifier_key": S(), "key_id": S()}))
_r(EventType("ledger.note_added", "An analyst attached a note to a subject's history.",
             {"text": S(), "reference": OPT}))

# --- users and roles -----------------------------------------------------------------
_r(EventType("auth.role_added", "A user was given a role (group).", {"role": S(), "reason": OPT}))
_r(EventType("auth.role_removed", "A role (group) was taken from a user.", {"role": S(), "reason": OPT}))

# --- the model registry mirror (MLflow) ----------------------------------------------------------
_MV = {"model": S(), "version": Field("int")}
# Tags whose values can name a person (``owner``, ``mlflow.user``…, see governance.sync.PERSONAL_TAG_KEYS)
# and a version's MLflow ``creator`` are personal data: they travel in the ``personal_*`` / ``creator``
# fields below, which the commitment scheme keeps out of the hashed body.
_PERSONAL = Field("object", required=False, pii=True)
_r(EventType("model.registered", "A registered model first seen in MLflow.",
             {"model": S(), "description": OPT, "tags": Field("object", required=False),
              "personal_tags": _PERSONAL}))
_r(EventType("model.changed", "A mirrored registered model changed in MLflow (description or tags).",
             {"model": S(), "changes": Field("object"), "personal_changes": _PERSONAL}))
_r(EventType("model.version_registered", "A model version first seen in MLflow.",
             {**_MV, "run_id": S(), "source": S(), "artifact_digest": S(), "creator": Field(nullable=True, pii=True),
              "metrics": Field("object"), "datasets": Field("list")}))
_r(EventType("model.version_changed", "A mirrored model version changed in MLflow (evidence may be stale).",
             {**_MV, "changes": Field("object"), "personal_changes": _PERSONAL}))
_r(EventType("model.version_classified", "The classification of a version's training data was set.",
             {**_MV, "level": S(), "previous_level": Field(nullable=True), "reason": S()}))

# --- MLflow grants no rights (#13): ownership and trusted creator identities ------------------------------
# Accounts appear only as "user:<id>"; the MLflow identity string of a link is personal (committed).
_r(EventType("model.owner_set", "The owner of a registered model was assigned in this product (never from MLflow).",
             {"model": S(), "owner": S(), "previous_owner": Field(nullable=True), "reason": S()}))
_r(EventType("model.version_registrant_linked", "The account that registered a version became known.",
             {**_MV, "registered_by": S(), "via": S(), "link_id": Field("int", required=False),
              "token_id": Field("int", required=False)}))
_r(EventType("mlflow.identity_linked", "InfoSec linked an MLflow identity to an account.",
             {"link_id": Field("int"), "mlflow_identity": Field(pii=True), "account": S(), "reason": S()}))
_r(EventType("mlflow.identity_unlinked", "InfoSec removed the link of an MLflow identity to an account.",
             {"link_id": Field("int"), "account": S(), "reason": S()}))

# --- environments and policies --------------------------------------------------------------------
_r(EventType("policy.updated", "A promotion policy was created or replaced.",
             {"environment": S(), "model": Field(nullable=True), "rules": Field("object"), "created": Field("bool")}))
_r(EventType("environment.created", "An environment was added to the promotion path.",
             {"environment": S(), "order": Field("int"), "mlflow_alias": S(), "max_data_classification": S()}))
_r(EventType("environment.updated", "An environment's settings changed.",
             {"environment": S(), "changes": Field("object")}))
_r(EventType("environment.freeze_declared", "A freeze window was declared for an environment.",
             {"environment": S(), "starts_at": S(), "ends_at": S(), "reason": S()}))

# --- promotions -------------------------------------------------------------------------------------
_PR = {"model": S(), "version": Field("int"), "environment": S()}
_GATES = Field("list")
_r(EventType("promotion.requested", "A promotion was requested; gates evaluated as evidence.",
             {**_PR, "strategy": S(), "canary_steps": Field("list"), "reason": S(), "evidence_digest": S(),
              "gates": _GATES}))
_r(EventType("promotion.evidence_changed", "A request's gate evidence changed; earlier approvals are stale.",
             {**_PR, "previous_digest": S(), "evidence_digest": S(), "gates": _GATES}))
_r(EventType("promotion.approval_given", "An approver approved a promotion request.",
             {**_PR, "group": S(), "comment": S(), "evidence_digest": S()}))
_r(EventType("promotion.approved", "Every approval rule and gate is satisfied: the request is approved.",
             {**_PR, "evidence_digest": S(), "approvers": Field("list"), "gates": _GATES}))
_r(EventType("promotion.rejected", "An approver rejected a promotion request.",
             {**_PR, "group": S(), "comment": S()}))
_r(EventType("promotion.changes_requested", "An approver asked the requester for changes; the request is closed.",
             {**_PR, "group": S(), "comment": S()}))
_r(EventType("promotion.withdrawn", "The requester withdrew a promotion request.", {**_PR, "reason": S()}))
_r(EventType("promotion.expired", "A pending request expired without a decision.",
             {**_PR, "after_days": Field("int")}))
_r(EventType("promotion.deploy_started", "Deployment of an approved promotion started.",
             {**_PR, "strategy": S(), "alias": S(), "previous_version": Field("int", nullable=True)}))
_r(EventType("promotion.alias_applied", "The MLflow alias now points at the promoted version.",
             {**_PR, "alias": S()}))
_r(EventType("promotion.deployed", "The promoted version is live in the environment.", {**_PR, "strategy": S()}))
_r(EventType("promotion.deploy_failed", "Deployment of a promotion failed.", {**_PR, "error": S()}))
_r(EventType("promotion.progress_reported", "A runtime reported rollout progress (canary step, shadow result).",
             {**_PR, "status": S(), "traffic_percent": Field("int"), "detail": Field(required=False)}))
_r(EventType("promotion.rolled_back", "The environment was rolled back to the previously deployed version.",
             {**_PR, "reason": S(), "restored_version": Field("int", nullable=True)}))
_r(EventType("promotion.break_glass", "Emergency promotion without approvals; a post-hoc review is due.",
             {**_PR, "justification": S(), "review_due_at": S(), "gates": _GATES, "break_glass": Field("bool")}))
_r(EventType("promotion.break_glass_reviewed", "A break-glass promotion's post-hoc review was approved.",
             {**_PR, "comment": S(), "late": Field("bool")}))

# --- break-glass consequences (issue #13, item 8e) ----------------------------------------------------
# A post-hoc review concluded the break-glass was not justified; "reverted": the release was rolled back
# or withdrawn by policy (the rollback itself is its own promotion.rolled_back / promotion.withdrawn entry).
_r(EventType("promotion.break_glass_found_unjustified",
             "A break-glass promotion's post-hoc review concluded it was not justified.",
             {**_PR, "comment": S(), "late": Field("bool"), "reverted": Field("bool")}))

# --- MLflow -----------------------------------------------------------------------------------------
_r(EventType("mlflow.webhook_received", "An MLflow webhook was accepted (a hint to re-sync).",
             {"delivery_id": S(), "entity": S(), "action": S(), "model": Field(nullable=True),
              "version": Field(required=False, nullable=True), "alias": Field(required=False, nullable=True)}))
# No longer written (issue #3: anyone could flood the ledger with refusals); kept registered because
# history holds entries of it. Refusals are now counted and summarised (mlflow.webhook_refusals_summarised).
_r(EventType("mlflow.webhook_refused",
             "An MLflow webhook delivery was refused (no longer written: see mlflow.webhook_refusals_summarised).",
             {"delivery_id": Field(nullable=True), "reason": S(), "detail": S(), "remote_addr": Field(nullable=True)}))
_r(EventType("mlflow.alias_changed", "An alias was set or removed in MLflow by this service.",
             {"model": S(), "alias": S(), "version": Field("int", nullable=True), "previous_version":
              Field("int", nullable=True), "reason": S()}))
_r(EventType("mlflow.alias_reverted", "An out-of-band alias change in MLflow was reverted.",
             {"model": S(), "alias": S(), "found_version": Field("int", nullable=True),
              "restored_version": Field("int", nullable=True)}))

# --- MLflow webhook refusals (issue #3) ---------------------------------------------------------------
# Refused deliveries come from unauthenticated callers: they are counted, not recorded one by one,
# and each closed interval becomes one entry per reason. Times are RFC 3339 UTC; no address, delivery
# id or other value sent by a caller is kept.
_r(EventType("mlflow.webhook_refusals_summarised",
             "MLflow webhook deliveries refused for one reason during one interval, counted.",
             {"reason": S(), "count": Field("int"), "first_at": S(), "last_at": S(), "window_start": S(),
              "interval_seconds": Field("int")}))

# --- compliance --------------------------------------------------------------------------------------
_r(EventType("compliance.violation", "A compliance violation was detected.",
             {"violation_id": Field("int"), "kind": S(), "summary": S(), "details": Field("object"),
              "reverted": Field("bool")}))
_r(EventType("compliance.violation_acknowledged", "InfoSec acknowledged a violation.",
             {"violation_id": Field("int"), "kind": S(), "comment": S()}))

# --- access: datasets, classification, lineage ----------------------------------------------------------
# Principals are "user:<id>" or "group:<name>"; resources "dataset:<name>", "registered_model:<name>",
# "environment:<name>".
_LIST = Field("list")
_r(EventType("dataset.created", "A dataset was registered.",
             {"dataset": S(), "owner": S(), "source_uri": S(), "description": OPT}))
_r(EventType("dataset.classified", "A dataset's own classification or PII categories changed.",
             {"dataset": S(), "level": S(), "previous_level": Field(nullable=True), "pii_categories": _LIST,
              "previous_pii_categories": _LIST, "reason": S(), "effective_level": S()}))
_r(EventType("dataset.field_classified", "A dataset field's classification or PII categories changed.",
             {"dataset": S(), "field": S(), "level": S(), "previous_level": Field(nullable=True),
              "pii_categories": _LIST, "previous_pii_categories": _LIST, "reason": S(), "effective_level": S()}))
_r(EventType("lineage.linked", "A model version was linked to a dataset it was trained or evaluated on.",
             {**_MV, "dataset": S(), "role": S(), "source": S()}))

# --- access: principals, grants, requests, reviews -------------------------------------------------------
_GRANT = {"grant_id": Field("int"), "principal": S(), "resource": S(), "permission": S()}
_r(EventType("access.service_account_created", "A service account (machine principal) was created.",
             {"name": S(), "owner": S(), "description": OPT}))
_r(EventType("access.grant_created", "Access was granted until a deadline.",
             {**_GRANT, "expires_at": S(), "justification": S(), "request_id": Field("int", nullable=True)}))
_r(EventType("access.grant_revoked", "A grant was revoked before it expired.", {**_GRANT, "reason": S()}))
_r(EventType("access.grant_expired", "A grant reached its expiry and was removed.", {**_GRANT, "expired_at": S()}))
_r(EventType("access.request_created", "Someone asked for access to a resource.",
             {"request_id": Field("int"), "principal": S(), "resource": S(), "permission": S(),
              "duration_days": Field("int"), "justification": S(), "needs_infosec": Field("bool")}))
_r(EventType("access.request_approved", "An access request was approved by its owner or by InfoSec.",
             {"request_id": Field("int"), "as_role": S(), "comment": S(), "final": Field("bool")}))
_r(EventType("access.request_rejected", "An access request was rejected.",
             {"request_id": Field("int"), "comment": S()}))
_r(EventType("access.request_withdrawn", "The requester withdrew an access request.",
             {"request_id": Field("int"), "reason": OPT}))
_r(EventType("access.check_denied", "An access check on a sensitive resource was denied.",
             {"principal": S(), "resource": S(), "permission": S(), "level": Field(nullable=True)}))
_r(EventType("access.review_started", "An access review campaign started.",
             {"campaign_id": Field("int"), "name": S(), "deadline": S(), "items": Field("int")}))
_r(EventType("access.review_decided", "A reviewer certified or revoked a grant in a campaign.",
             {"campaign_id": Field("int"), "grant_id": Field("int"), "decision": S(), "comment": OPT}))
_r(EventType("access.review_closed", "An access review campaign closed; uncertified grants were revoked.",
             {"campaign_id": Field("int"), "certified": Field("int"), "revoked": Field("int"),
              "auto_revoked": Field("int")}))

# --- privacy --------------------------------------------------------------------------------------------
_r(EventType("auth.user_registered", "A person's account was created.",
             {"username": Field(pii=True), "email": Field(required=False, pii=True),
              "full_name": Field(required=False, pii=True)}))
_r(EventType("privacy.pii_revealed", "An authorised reader revealed personal data kept out of the ledger body.",
             {"seq": Field("int"), "fields": _LIST, "data_subject": S(), "reason": S()}))
_r(EventType("privacy.subject_erased", "A data subject's key was destroyed (GDPR Art. 17): their values are gone.",
             {"data_subject": S(), "reason": S(), "values": Field("int"), "account_anonymised": Field("bool")}))
_r(EventType("privacy.kek_rotated", "Data subject keys were re-wrapped under a new key-encryption key (KEK).",
             {"from_kek_id": S(), "to_kek_id": S(), "rewrapped": Field("int"), "live_keys": Field("int")}))
_r(EventType("ledger.exported", "The ledger was exported (who, format, scope).", {"export_id": Field("int"), "format": S(), "scope": Field("object")}))  # noqa: E501
_r(EventType("ledger.signing_key_rotated", "The checkpoint signing key was replaced.", {"old_verifier_key": S(), "new_verifier_key": S(), "reason": S()}))  # noqa: E501
# The handover checkpoint (tree size H, signed by both keys) ends the old key's validity at H and starts the
# new key's at H (docs/ledger.md, "Key lifetimes"); recorded in the rotation's transaction, right after it.
_r(EventType("ledger.signing_key_handover", "A rotation's handover checkpoint: the old key is valid up to its tree "
             "size, the new key from it.",
             {"old_verifier_key": S(), "new_verifier_key": S(), "tree_size": Field("int"), "root_hash": S()}))

# --- API tokens -------------------------------------------------------------------------------------------
_r(EventType("access.api_token_created", "An API token was issued to a service account (never kept itself).",
             {"service_account": S(), "token_id": Field("int"), "name": S(), "prefix": S(), "scopes": _LIST,
              "expires_at": S()}))
_r(EventType("access.api_token_revoked", "An API token was revoked.",
             {"service_account": S(), "token_id": Field("int"), "prefix": S(), "reason": S()}))

# --- runtime events from serving and monitoring systems (POST /api/v1/events) -----------------------------
# Each names the model version and environment when it has one; ``detail`` carries the
# sender's own context (an object, kept as sent). ``source`` is the reporting system.
_RT = {"source": S(), "occurred_at": S(), "model": Field(required=False, nullable=True),
       "version": Field("int", required=False, nullable=True), "environment": Field(required=False, nullable=True),
       "detail": Field("object", required=False)}
_NUM = Field("number")


def _rt(name: str, description: str, fields: dict[str, Field] | None = None) -> None:
    _r(EventType(name, description, {**_RT, **(fields or {})}, runtime=True))


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

# --- integrity, retention and legal holds (operations) ------------------------------------------------------
_r(EventType("ledger.verified", "A scheduled verification of the ledger completed.",
             {"mode": S(), "from_size": Field("int"), "tree_size": Field("int"), "ok": Field("bool"),
              "reason": Field(nullable=True), "duration_ms": Field("int")}))
_r(EventType("privacy.legal_hold_created", "A legal hold now protects a data subject's personal data from erasure.",
             {"hold_id": Field("int"), "data_subject": S(), "reason": S(), "reference": OPT}))
_r(EventType("privacy.legal_hold_released", "A legal hold was released.",
             {"hold_id": Field("int"), "data_subject": S(), "reason": S()}))
_r(EventType("privacy.retention_erased", "Personal data past its retention period was crypto-shredded.",
             {"data_subject": S(), "retention_class": S(), "values": Field("int"), "oldest": S()}))

# --- denied access checks, summarised per interval (access.checks, issue 8g) ----------------------------------
# access.check_denied is written once per principal, resource and permission per ACCESS_DENIAL_INTERVAL; the
# repeats are counted, and this entry closes the interval with the count (principals are user:<id>/group:<name>).
_r(EventType("access.check_denials_summarised",
             "Denied access checks of one principal on one resource and permission during an interval, counted.",
             {"principal": S(), "resource": S(), "permission": S(), "count": Field("int"), "first_at": S(),
              "last_at": S()}))

# --- closing accounts (access.accounts, issue 8f) ----------------------------------------------------------------
# The retention clock of a person's personal data starts at this entry (docs/retention.md); the account is named
# as user:<id> only, and the reason must not hold personal data.
_r(EventType("auth.account_closed", "A person's account was closed: it cannot sign in, and retention of its "
             "personal data starts now.", {"account": S(), "reason": S()}))

# --- two-person control over the rules of protected environments (governance.change_requests) -------------
# Accounts appear as "user:<id>" references only; "change" is the proposal exactly as applied.
_GC = {"change_request_id": Field("int"), "kind": S(), "environment": S(), "model": Field(nullable=True)}
_r(EventType("governance_change.requested", "A change to a protected environment's rules was proposed.",
             {**_GC, "change": Field("object"), "proposed_by": S(), "reason": S()}))
_r(EventType("governance_change.approved", "A second InfoSec member approved a proposed change; it was applied.",
             {**_GC, "proposed_by": S(), "approved_by": S(), "comment": S()}))
_r(EventType("governance_change.rejected", "A second InfoSec member rejected a proposed change.",
             {**_GC, "proposed_by": S(), "rejected_by": S(), "comment": S()}))
_r(EventType("governance_change.withdrawn", "The proposer withdrew a proposed change.",
             {**_GC, "proposed_by": S(), "reason": S()}))
_r(EventType("environment.protection_changed", "An environment's two-person protection was turned on or off.",
             {"environment": S(), "protected": Field("bool")}))

# --- change requests expire (governance.change_requests.change_request_expire, CHANGE_REQUEST_EXPIRY_DAYS) ---------
# Written by the scheduler; the proposer appears as a "user:<id>" reference only.
_r(EventType("governance_change.expired", "A proposed change to a protected environment's rules was left pending "
             "past CHANGE_REQUEST_EXPIRY_DAYS and expired; it can no longer be approved.",
             {**_GC, "proposed_by": S(), "after_days": Field("int")}))


# --- the subject of each type's entries (catalogue metadata) --------------------------------------------------
# What ``record()`` is called with, by the services that write each type; "A | B" when it depends on the case
# (access events are about the resource: a dataset, a registered model or an environment; runtime events are
# about ``model_version:<model>/<version>`` when they name both, else ``environment:<name>``, else
# ``runtime_source:<source>``; a violation's entries are about what it is about).
_ACCESS_RESOURCE = "dataset | registered_model | environment"
_RUNTIME_SUBJECT = "model_version | environment | runtime_source"
_VIOLATION_SUBJECT = "promotion_request | registered_model | model_version | environment | ledger"
registry.describe_subjects({
    "ledger.signing_key_registered": "signing_key",
    "ledger.note_added": "any (the subject the note is attached to)",
    "auth.role_added": "user",
    "auth.role_removed": "user",
    "model.registered": "registered_model",
    "model.changed": "registered_model",
    "model.version_registered": "model_version",
    "model.version_changed": "model_version",
    "model.version_classified": "model_version",
    "model.owner_set": "registered_model",
    "model.version_registrant_linked": "model_version",
    "mlflow.identity_linked": "identity_link",
    "mlflow.identity_unlinked": "identity_link",
    "policy.updated": "environment",
    "environment.created": "environment",
    "environment.updated": "environment",
    "environment.freeze_declared": "environment",
    **{name: "promotion_request" for name in registry.names() if name.startswith("promotion.")},
    "mlflow.webhook_received": "registered_model | webhook_endpoint",
    "mlflow.webhook_refused": "registered_model | webhook_endpoint",
    "mlflow.alias_changed": "registered_model",
    "mlflow.alias_reverted": "registered_model",
    "mlflow.webhook_refusals_summarised": "webhook_endpoint",
    "compliance.violation": _VIOLATION_SUBJECT,
    "compliance.violation_acknowledged": _VIOLATION_SUBJECT,
    "dataset.created": "dataset",
    "dataset.classified": "dataset",
    "dataset.field_classified": "dataset",
    "lineage.linked": "model_version",
    "access.service_account_created": "service_account",
    "access.grant_created": _ACCESS_RESOURCE,
    "access.grant_revoked": _ACCESS_RESOURCE,
    "access.grant_expired": _ACCESS_RESOURCE,
    "access.request_created": _ACCESS_RESOURCE,
    "access.request_approved": _ACCESS_RESOURCE,
    "access.request_rejected": _ACCESS_RESOURCE,
    "access.request_withdrawn": _ACCESS_RESOURCE,
    "access.check_denied": f"{_ACCESS_RESOURCE} | ledger_entry",
    "access.check_denials_summarised": f"{_ACCESS_RESOURCE} | ledger_entry",
    "access.review_started": "access_review",
    "access.review_decided": "access_review",
    "access.review_closed": "access_review",
    "auth.user_registered": "user",
    "privacy.pii_revealed": "user",
    "privacy.subject_erased": "user",
    "privacy.kek_rotated": "ledger",
    "ledger.exported": "export",
    "ledger.signing_key_rotated": "ledger",
    "ledger.signing_key_handover": "ledger",
    "access.api_token_created": "service_account",
    "access.api_token_revoked": "service_account",
    **{name: _RUNTIME_SUBJECT for name in registry.runtime_names()},
    "ledger.verified": "ledger",
    "privacy.legal_hold_created": "user",
    "privacy.legal_hold_released": "user",
    "privacy.retention_erased": "user",
    "auth.account_closed": "user",
    "governance_change.requested": "environment",
    "governance_change.approved": "environment",
    "governance_change.rejected": "environment",
    "governance_change.withdrawn": "environment",
    "governance_change.expired": "environment",
    "environment.protection_changed": "environment",
})
