"""Every registered event type mapped to an OCSF class: ONE table (``MAPPING``), and the entry -> OCSF object.

The table is keyed by event type; an entry of a type missing from it is an error (``UnmappedEventType``), never
a silent "Other" (tests/integrations/test_siem_ocsf.py checks that every registered type has a row, so a new
event type cannot ship without deciding what a SIEM sees). docs/siem.md's mapping section is generated from it
(``python manage.py siem_mapping``).

What leaves: the hashed body of the entry only (seq, time, type, actor, subject, payload, request id, entry
hash). Payload fields marked personal data are already commitments in the body (audit/pii.py), so nothing
personal is revealed in clear; no secret is ever in a ledger body.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from audit.event_types import registry
from audit.models import Entry

OCSF_VERSION = "1.3.0"
PRODUCT = {"name": "ML governance ledger", "vendor_name": "ml-governance-ledger", "version": "0.1.0"}


class UnmappedEventType(LookupError):
    """An entry whose event type has no row in ``MAPPING``: a code defect (add the row), not bad input."""


# OCSF 1.3 classes used here: uid -> (name, category uid, category name, {activity id: activity name}).
CLASSES: dict[int, tuple[str, int, str, dict[int, str]]] = {
    2004: ("Detection Finding", 2, "Findings", {1: "Create", 2: "Update", 3: "Close"}),
    2005: ("Incident Finding", 2, "Findings", {1: "Create", 2: "Update", 3: "Close"}),
    3001: ("Account Change", 3, "Identity & Access Management",
           {1: "Create", 2: "Enable", 3: "Password Change", 5: "Disable", 6: "Delete", 7: "Attach Policy",
            8: "Detach Policy", 9: "Lock", 99: "Other"}),
    3002: ("Authentication", 3, "Identity & Access Management", {1: "Logon", 2: "Logoff", 99: "Other"}),
    3004: ("Entity Management", 3, "Identity & Access Management",
           {1: "Create", 2: "Read", 3: "Update", 4: "Delete", 11: "Deactivate", 99: "Other"}),
    3005: ("User Access Management", 3, "Identity & Access Management",
           {1: "Assign Privileges", 2: "Revoke Privileges"}),
    6002: ("Application Lifecycle", 6, "Application Activity",
           {1: "Install", 2: "Remove", 3: "Start", 4: "Stop", 8: "Update", 99: "Other"}),
    6003: ("API Activity", 6, "Application Activity", {1: "Create", 2: "Read", 3: "Update", 4: "Delete"}),
}
SEVERITIES = {1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}
SUCCESS, FAILURE = 1, 2
_STATUS = {SUCCESS: "Success", FAILURE: "Failure"}


@dataclass(frozen=True)
class Mapping:
    """One row: the OCSF class, activity, severity and outcome of an event type.

    ``failed_when_false``: a boolean payload field whose False turns the event into a failure of severity High
    (``ledger.verified`` with ``ok`` false is an integrity failure)."""

    class_uid: int
    activity_id: int
    severity_id: int = 1
    status_id: int | None = None
    failed_when_false: str | None = None

    @property
    def class_name(self) -> str:
        return CLASSES[self.class_uid][0]

    @property
    def activity_name(self) -> str:
        return CLASSES[self.class_uid][3][self.activity_id]

    @property
    def type_uid(self) -> int:
        return self.class_uid * 100 + self.activity_id


M = Mapping
_FIND, _INCIDENT, _ACCOUNT, _AUTH, _ENTITY, _ACCESS, _APP, _API = 2004, 2005, 3001, 3002, 3004, 3005, 6002, 6003
_CREATE, _UPDATE, _DELETE = 1, 3, 4

MAPPING: dict[str, Mapping] = {
    # --- identity: authentication and accounts ------------------------------------------------------
    "auth.login_succeeded": M(_AUTH, 1, 1, SUCCESS),
    "auth.login_failed": M(_AUTH, 1, 3, FAILURE),
    "auth.logged_out": M(_AUTH, 2, 1, SUCCESS),
    "auth.session_expired": M(_AUTH, 2, 1, SUCCESS),
    "auth.step_up": M(_AUTH, 99, 1, SUCCESS),
    "auth.token_first_use_from_address": M(_AUTH, 1, 2, SUCCESS),
    "auth.locked_out": M(_ACCOUNT, 9, 4, SUCCESS),
    "auth.user_registered": M(_ACCOUNT, 1, 1, SUCCESS),
    "auth.account_enabled": M(_ACCOUNT, 2, 2, SUCCESS),
    "auth.account_disabled": M(_ACCOUNT, 5, 2, SUCCESS),
    "auth.account_closed": M(_ACCOUNT, 6, 2, SUCCESS),
    "auth.password_changed": M(_ACCOUNT, 3, 2, SUCCESS),
    "auth.role_added": M(_ACCOUNT, 7, 3, SUCCESS),
    "auth.role_removed": M(_ACCOUNT, 8, 2, SUCCESS),
    "auth.identity_linked": M(_ACCOUNT, 99, 2, SUCCESS),
    "mlflow.identity_linked": M(_ACCOUNT, 99, 2, SUCCESS),
    "mlflow.identity_unlinked": M(_ACCOUNT, 99, 2, SUCCESS),
    "access.service_account_created": M(_ACCOUNT, 1, 2, SUCCESS),
    "access.api_token_created": M(_ENTITY, _CREATE, 2, SUCCESS),
    "access.api_token_revoked": M(_ENTITY, 11, 2, SUCCESS),
    # --- access: grants, requests, reviews, checks ---------------------------------------------------
    "access.grant_created": M(_ACCESS, 1, 2, SUCCESS),
    "access.grant_revoked": M(_ACCESS, 2, 2, SUCCESS),
    "access.grant_expired": M(_ACCESS, 2, 1, SUCCESS),
    "access.request_created": M(_ENTITY, _CREATE, 1),
    "access.request_approved": M(_ENTITY, _UPDATE, 2, SUCCESS),
    "access.request_rejected": M(_ENTITY, _UPDATE, 1),
    "access.request_withdrawn": M(_ENTITY, _UPDATE, 1),
    "access.review_started": M(_ENTITY, _CREATE, 1),
    "access.review_decided": M(_ENTITY, _UPDATE, 1),
    "access.review_closed": M(_ENTITY, _UPDATE, 1),
    "access.check_denied": M(_API, 2, 3, FAILURE),
    "access.check_denials_summarised": M(_API, 2, 3, FAILURE),
    # --- the ledger: reads, exports, keys, verification, privacy -------------------------------------
    "ledger.accessed": M(_API, 2, 1, SUCCESS),
    "ledger.exported": M(_API, 2, 2, SUCCESS),
    "ledger.note_added": M(_ENTITY, _UPDATE, 1),
    "ledger.signing_key_registered": M(_ENTITY, _CREATE, 2, SUCCESS),
    "ledger.signing_key_rotated": M(_ENTITY, _UPDATE, 3, SUCCESS),
    "ledger.signing_key_handover": M(_ENTITY, _UPDATE, 3, SUCCESS),
    "ledger.verified": M(_API, 2, 1, SUCCESS, failed_when_false="ok"),
    "privacy.pii_revealed": M(_API, 2, 3, SUCCESS),
    "privacy.subject_erased": M(_ENTITY, _DELETE, 3, SUCCESS),
    "privacy.retention_erased": M(_ENTITY, _DELETE, 2, SUCCESS),
    "privacy.kek_rotated": M(_ENTITY, _UPDATE, 3, SUCCESS),
    "privacy.legal_hold_created": M(_ENTITY, _CREATE, 2, SUCCESS),
    "privacy.legal_hold_released": M(_ENTITY, _DELETE, 2, SUCCESS),
    # --- compliance findings -------------------------------------------------------------------------
    "compliance.violation": M(_FIND, 1, 4),
    "compliance.violation_acknowledged": M(_FIND, 2, 2),
    "promotion.break_glass_found_unjustified": M(_FIND, 1, 4),
    "mlflow.alias_reverted": M(_FIND, 2, 3),
    "mlflow.webhook_refused": M(_API, _CREATE, 3, FAILURE),
    "mlflow.webhook_refusals_summarised": M(_API, _CREATE, 3, FAILURE),
    "mlflow.webhook_received": M(_API, _CREATE, 1, SUCCESS),
    # --- runtime events from serving and monitoring --------------------------------------------------
    "monitoring.data_drift_detected": M(_FIND, 1, 3),
    "monitoring.prediction_drift_detected": M(_FIND, 1, 3),
    "monitoring.data_quality_failed": M(_FIND, 1, 3),
    "monitoring.slo_breached": M(_FIND, 1, 4),
    "incident.opened": M(_INCIDENT, 1, 4),
    "incident.mitigated": M(_INCIDENT, 2, 3),
    "incident.closed": M(_INCIDENT, 3, 2),
    "deployment.canary_step_completed": M(_APP, 8, 1, SUCCESS),
    "deployment.traffic_shifted": M(_APP, 8, 1, SUCCESS),
    "deployment.shadow_started": M(_APP, 3, 1, SUCCESS),
    "deployment.shadow_stopped": M(_APP, 4, 1, SUCCESS),
    "deployment.rolled_back": M(_APP, 8, 3, SUCCESS),
    # --- promotions ---------------------------------------------------------------------------------
    "promotion.requested": M(_ENTITY, _CREATE, 1),
    "promotion.evidence_changed": M(_ENTITY, _UPDATE, 2),
    "promotion.approval_given": M(_ENTITY, _UPDATE, 1, SUCCESS),
    "promotion.approved": M(_ENTITY, _UPDATE, 2, SUCCESS),
    "promotion.rejected": M(_ENTITY, _UPDATE, 2),
    "promotion.changes_requested": M(_ENTITY, _UPDATE, 1),
    "promotion.withdrawn": M(_ENTITY, _UPDATE, 1),
    "promotion.expired": M(_ENTITY, _UPDATE, 1),
    "promotion.break_glass": M(_ENTITY, _UPDATE, 4, SUCCESS),
    "promotion.break_glass_reviewed": M(_ENTITY, _UPDATE, 2, SUCCESS),
    "promotion.deploy_started": M(_APP, 1, 2),
    "promotion.alias_applied": M(_APP, 8, 2, SUCCESS),
    "promotion.deployed": M(_APP, 1, 2, SUCCESS),
    "promotion.receipt_issued": M(_APP, 1, 1, SUCCESS),
    "promotion.receipt_refused": M(_APP, 1, 3, FAILURE),
    "promotion.deploy_failed": M(_APP, 1, 3, FAILURE),
    "promotion.progress_reported": M(_APP, 8, 1),
    "promotion.rolled_back": M(_APP, 8, 3, SUCCESS),
    # --- the registry, datasets, environments, policies --------------------------------------------
    "model.registered": M(_ENTITY, _CREATE, 1),
    "model.changed": M(_ENTITY, _UPDATE, 1),
    "model.owner_set": M(_ENTITY, _UPDATE, 2),
    "model.version_registered": M(_ENTITY, _CREATE, 1),
    "model.version_changed": M(_ENTITY, _UPDATE, 1),
    "model.version_classified": M(_ENTITY, _UPDATE, 2),
    "model.version_registrant_linked": M(_ENTITY, _UPDATE, 1),
    "model.attestation_added": M(_ENTITY, _CREATE, 1),
    "mlflow.alias_changed": M(_ENTITY, _UPDATE, 2),
    "mlflow.alias_observed": M(_ENTITY, _UPDATE, 1),
    "lineage.linked": M(_ENTITY, _UPDATE, 1),
    "dataset.created": M(_ENTITY, _CREATE, 1),
    "dataset.classified": M(_ENTITY, _UPDATE, 2),
    "dataset.field_classified": M(_ENTITY, _UPDATE, 2),
    "environment.created": M(_ENTITY, _CREATE, 2),
    "environment.updated": M(_ENTITY, _UPDATE, 2),
    "environment.protection_changed": M(_ENTITY, _UPDATE, 3),
    "environment.freeze_declared": M(_ENTITY, _UPDATE, 2),
    "policy.updated": M(_ENTITY, _UPDATE, 3),
    "governance_change.requested": M(_ENTITY, _CREATE, 2),
    "governance_change.approved": M(_ENTITY, _UPDATE, 3, SUCCESS),
    "governance_change.rejected": M(_ENTITY, _UPDATE, 2),
    "governance_change.withdrawn": M(_ENTITY, _UPDATE, 1),
    "governance_change.expired": M(_ENTITY, _UPDATE, 1),
    # Outbound webhooks (integrations.webhooks): a subscription is an entity InfoSec manages; a failing one
    # (paused after a day of refused deliveries) is Medium, as a SIEM rule should notice a receiver gone dark.
    "webhook.subscription_created": M(_ENTITY, _CREATE, 2),
    "webhook.subscription_updated": M(_ENTITY, _UPDATE, 2),
    "webhook.subscription_paused": M(_ENTITY, _UPDATE, 2),
    "webhook.subscription_resumed": M(_ENTITY, _UPDATE, 2),
    "webhook.subscription_deleted": M(_ENTITY, _DELETE, 2),
    "webhook.subscription_failing": M(_ENTITY, _UPDATE, 3, FAILURE),
    "webhook.secret_rotated": M(_ENTITY, _UPDATE, 2),
    "webhook.replay_requested": M(_ENTITY, _UPDATE, 2),
}


def mapping_for(event_type: str) -> Mapping:
    try:
        return MAPPING[event_type]
    except KeyError:
        raise UnmappedEventType(f"event type {event_type!r} has no OCSF mapping (integrations/siem/ocsf.py)") \
            from None


# The constant part of each event type's OCSF object, built once per type (the hot path copies it).
_PREFIX_CACHE: dict[str, dict[str, Any]] = {}


def _prefix(event_type: str) -> dict[str, Any]:
    cached = _PREFIX_CACHE.get(event_type)
    if cached is None:
        m = mapping_for(event_type)
        _name, category_uid, category_name, _ = CLASSES[m.class_uid]
        cached = {
            "class_uid": m.class_uid, "class_name": m.class_name,
            "category_uid": category_uid, "category_name": category_name,
            "activity_id": m.activity_id, "activity_name": m.activity_name,
            "type_uid": m.type_uid, "type_name": f"{m.class_name}: {m.activity_name}",
            "severity_id": m.severity_id, "severity": SEVERITIES[m.severity_id],
            "message": registry.get(event_type).description if event_type in registry else event_type,
        }
        if m.status_id is not None:
            cached["status_id"], cached["status"] = m.status_id, _STATUS[m.status_id]
        _PREFIX_CACHE[event_type] = cached
    return cached


def _epoch_ms(timestamp: str) -> int:
    # "2026-11-29T06:41:04.123456Z" (audit.canonical.format_timestamp): fixed width, UTC.
    return int(datetime.fromisoformat(timestamp[:-1] + "+00:00").timestamp() * 1000)


def to_ocsf(entry: Entry) -> dict[str, Any]:
    """The OCSF event of one ledger entry. Raises ``UnmappedEventType`` for a type without a row."""
    event = dict(_prefix(entry.event_type))
    payload = json.loads(entry.payload_json)
    m = MAPPING[entry.event_type]
    if m.failed_when_false is not None and payload.get(m.failed_when_false) is False:
        event.update(status_id=FAILURE, status=_STATUS[FAILURE], severity_id=4, severity=SEVERITIES[4])
    event["time"] = _epoch_ms(entry.timestamp)
    event["actor"] = {"user": {"uid": entry.actor_id, "type": entry.actor_type}}
    metadata: dict[str, Any] = {
        "version": OCSF_VERSION, "product": PRODUCT, "uid": entry.entry_hash, "sequence": entry.seq,
        "event_code": entry.event_type, "original_time": entry.timestamp, "log_name": "ledger",
    }
    if entry.request_id:
        metadata["correlation_uid"] = entry.request_id
    event["metadata"] = metadata
    subject = {"uid": entry.subject_id, "type": entry.subject_type}
    if m.class_uid in (_AUTH, _ACCOUNT, _ACCESS) and entry.subject_type == "user":
        event["user"] = subject
    elif m.class_uid == _ENTITY:
        event["entity"] = subject
    elif m.class_uid == _API:
        event["api"] = {"operation": entry.event_type}
    event["unmapped"] = {"subject": subject, "payload": payload, "prev_hash": entry.prev_hash,
                         "subject_prev": entry.subject_prev}
    return event


def mapping_rows() -> list[dict[str, Any]]:
    """The table as rows (for the generated doc and JSON), sorted by event type."""
    rows = []
    for name in sorted(MAPPING):
        m = MAPPING[name]
        rows.append({"event_type": name, "class_uid": m.class_uid, "class_name": m.class_name,
                     "category_uid": CLASSES[m.class_uid][1], "activity_id": m.activity_id,
                     "activity_name": m.activity_name, "severity_id": m.severity_id,
                     "status": _STATUS.get(m.status_id or 0, "-"),
                     "note": f"Failure, High when {m.failed_when_false} is false" if m.failed_when_false else ""})
    return rows
