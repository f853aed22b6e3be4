"""The regulation mapping: which requirement the ledger's events, fields and controls satisfy (the one source).

One structure, ``FRAMEWORKS``: framework -> requirement -> its title, what it asks, the event types whose
entries are its evidence, the entry fields that carry what it asks for, the controls (prose), the tests that
attack or exercise them, the docs that explain them, and an honest status (``met``, ``partial`` with the gap
named, or ``outside`` the product). Rendered three ways:

* ``markdown()``: ``docs/compliance.md``, rewritten by ``python manage.py compliance_map`` (a test fails when
  the file is stale, like ``docs/event-types.md``);
* ``scope_summary(counts)``: the ``compliance`` member of an export bundle's ``manifest.json`` and the
  "Regulation mapping" section of the audit pack: for each requirement, the entries of its event types found
  in the export's scope, counted by type;
* ``mapping()``: the whole mapping as JSON (``compliance_map --json``).

The ledger layer knows event types here by NAME only (strings): the domains that register them
(``access/events.py``, ``governance/events.py``) are above it and are not imported. A test checks that every
name is registered once the apps are ready, that every test named exists and every docs anchor resolves.

Not legal advice: the mapping says what the product records and enforces; whether that is enough for an
assessor is the assessor's call (the gaps are named, requirement by requirement).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = "audit-ledger-compliance/1"
DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "compliance.md"

STATUSES = {
    "met": "met by the product",
    "partial": "partly met: the gap is named",
    "outside": "outside the product: the operator's or the organisation's",
}


@dataclass(frozen=True)
class Requirement:
    id: str
    title: str
    asks: str
    status: str
    events: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    controls: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()
    docs: tuple[str, ...] = ()
    gap: str = ""


@dataclass(frozen=True)
class Framework:
    id: str
    title: str
    source: str
    requirements: tuple[Requirement, ...]


# Shared lists (several requirements cite the same evidence).
_AUTH_FAILURES = ("auth.login_failed", "auth.locked_out")
_SIGN_INS = ("auth.login_succeeded", "auth.logged_out", "auth.session_expired", "auth.step_up")
_ROLE_CHANGES = ("auth.role_added", "auth.role_removed")
_ACCOUNTS = ("auth.user_registered", "auth.account_disabled", "auth.account_enabled", "auth.account_closed")
_TOKENS = ("access.service_account_created", "access.api_token_created", "access.api_token_revoked")
_GRANTS = ("access.grant_created", "access.grant_revoked", "access.grant_expired")
_REQUESTS = ("access.request_created", "access.request_approved", "access.request_rejected",
             "access.request_withdrawn")
_REVIEWS = ("access.review_started", "access.review_decided", "access.review_closed")
_RULE_CHANGES = ("governance_change.requested", "governance_change.approved", "governance_change.rejected",
                 "governance_change.withdrawn", "governance_change.expired", "policy.updated",
                 "environment.protection_changed", "environment.freeze_declared")
_PROMOTIONS = ("promotion.requested", "promotion.evidence_changed", "promotion.approval_given", "promotion.approved",
               "promotion.rejected", "promotion.changes_requested", "promotion.withdrawn", "promotion.expired",
               "promotion.deploy_started", "promotion.alias_applied", "promotion.deployed", "promotion.deploy_failed",
               "promotion.rolled_back", "promotion.receipt_issued", "promotion.receipt_refused")
_BREAK_GLASS = ("promotion.break_glass", "promotion.break_glass_reviewed", "promotion.break_glass_found_unjustified")
_OUT_OF_BAND = ("mlflow.alias_changed", "mlflow.alias_reverted", "compliance.violation",
                "compliance.violation_acknowledged")
_ADMISSION = ("admission.allowed", "admission.refused", "admission.summarised")
# What CI says about a build (in-toto attestations): evidence a promotion's gate rests on (docs/attestations.md).
_CI_EVIDENCE = ("model.attestation_added",)
_T_ADMISSION = "tests/governance/test_admission_webhook.py"
_AUDIT_LOG_READS = ("ledger.accessed", "ledger.exported", "privacy.pii_revealed")
_LEDGER_KEYS = ("ledger.signing_key_registered", "ledger.signing_key_rotated", "ledger.signing_key_handover",
                "privacy.kek_rotated")
_ENTRY_FIELDS = ("actor (type, id)", "event_type", "timestamp", "subject (type, id)", "payload", "request_id")

_T_TAMPER = "tests/audit/integration/test_tampering.py"
_T_TRIGGERS = "tests/audit/integration/test_triggers.py"
_T_ROLES = "tests/access/test_role_services.py"
_T_GRANTS = "tests/access/test_grants.py"
_T_REVIEWS = "tests/access/test_requests_reviews.py"
_T_BREAK_GLASS = "tests/governance/test_person_and_break_glass.py"
_T_CHANGES = "tests/governance/test_change_requests.py"
_T_PROMOTIONS = "tests/governance/test_promotions.py"
_T_RETENTION = "tests/ops/test_retention.py"
_T_REVEAL = "tests/audit/pii/test_reveal.py"
_T_COMPLIANCE = "tests/audit/test_compliance.py"
_T_NO_PII = "tests/audit/pii/test_no_personal_data_in_hashed_bodies.py"

PCI = Framework(
    "pci-dss-4.0.1", "PCI DSS v4.0.1, requirement 10 (log and monitor all access)",
    "PCI Security Standards Council, PCI DSS v4.0.1 (June 2024), requirements 10.2, 10.3, 10.5",
    (
        Requirement(
            "10.2.1.1", "Individual user access to cardholder data",
            "Audit logs capture all individual user access to cardholder data.",
            "partial",
            events=(*_GRANTS, "access.check_denied", "access.check_denials_summarised", "privacy.pii_revealed",
                    "dataset.classified", "dataset.field_classified"),
            fields=("actor", "subject (dataset:<name>)", "payload.permission"),
            controls=("Access to restricted datasets (PAN, cardholder data) is granted only through grants, each "
                      "a ledger entry with its justification and expiry; every refused access check is recorded.",
                      "Personal data kept out of the ledger is revealed only through privacy.pii_revealed "
                      "(who, which entry, why)."),
            tests=(_T_GRANTS, "tests/audit/pii/test_reveal_denials.py", _T_REVEAL),
            docs=("docs/access.md#grants", "docs/access.md#the-access-check", "docs/pii.md#reading"),
            gap="The product governs who MAY read cardholder data; the reads themselves happen in the data "
                "platform (warehouse, feature store), whose own access logs must be kept for this requirement.",
        ),
        Requirement(
            "10.2.1.2", "All actions by individuals with administrative access",
            "Audit logs capture all actions taken by any individual with administrative access, including any "
            "interactive use of application or system accounts.",
            "partial",
            events=(*_ROLE_CHANGES, *_RULE_CHANGES, *_GRANTS, *_TOKENS, *_BREAK_GLASS, *_LEDGER_KEYS,
                    "auth.account_disabled", "auth.account_enabled", "privacy.legal_hold_created",
                    "privacy.legal_hold_released", "privacy.subject_erased", "ledger.note_added",
                    "auth.token_first_use_from_address"),
            fields=("actor (user:<id>, service_account:<id> or system:<component>)", "request_id"),
            controls=("Every state change, through the console, the API, the admin, a command or a task, goes "
                      "through a service that writes its ledger entry in the same transaction (no entry, no "
                      "change); the admin is read-only and its actions call the same services.",
                      "System components act as system:<component>, service accounts by their own id: no "
                      "shared or anonymous actor; an API token's first use from a new address is recorded."),
            tests=("tests/admin/test_admin_actions.py", "tests/api/test_superuser_no_side_door.py", _T_ROLES,
                   "tests/audit/integration/test_transactions.py"),
            docs=("docs/security.md#2-the-admin-is-a-raw-view", "docs/architecture.md"),
            gap="Administrators' reads outside the audit log (browsing models, grants) are not recorded, and "
                "actions on the servers or the database underneath (shell, SQL) are the platform's logs.",
        ),
        Requirement(
            "10.2.1.3", "All access to audit logs",
            "Audit logs capture all access to audit logs.",
            "partial",
            events=_AUDIT_LOG_READS,
            fields=("actor", "payload (the filter or the export's scope)", "request_id"),
            controls=("Reading ledger pages, entries, proofs and exports through the console or the API is "
                      "recorded once per request with its filter (API pagination coalesced): ledger.accessed.",
                      "Every export is recorded before its file exists (ledger.exported, with its scope), and "
                      "the bundle carries that entry with its proof.",
                      "Revealing personal data is recorded with its reason (privacy.pii_revealed)."),
            tests=("tests/audit/test_ledger_access.py", "tests/audit/test_ledger_reads_marked.py",
                   "tests/audit/test_ledger_access_fail_closed.py", "tests/audit/export/test_service.py", _T_REVEAL),
            docs=("docs/export-format.md#the-export-is-itself-in-the-ledger", "docs/pii.md#reading"),
            gap="Direct database access to the ledger tables (a DBA with psql) is not seen by the product: "
                "enable the database's own audit logging (e.g. pgaudit) for the ledger schema.",
        ),
        Requirement(
            "10.2.1.4", "Invalid logical access attempts",
            "Audit logs capture all invalid logical access attempts.",
            "met",
            events=(*_AUTH_FAILURES, "access.check_denied", "access.check_denials_summarised",
                    "mlflow.webhook_refused", "mlflow.webhook_refusals_summarised"),
            fields=("subject (user:<id>, or a keyed hash of an unknown login name)", "payload.origin (personal)",
                    "timestamp"),
            controls=("Failed sign-ins and lockouts are recorded per attempt, throttled per username and per "
                      "address (django-axes); a failed attempt against an unknown account names a keyed hash, "
                      "never the raw name.",
                      "Denied access checks and refused MLflow webhooks are recorded (bursts summarised, each "
                      "summary counting what it covers)."),
            tests=("tests/access/test_authentication_events.py", "tests/console/test_login_console.py",
                   "tests/identity/test_sso.py", "tests/audit/test_ledger_access.py",
                   "tests/governance/test_webhook_refusals.py", "tests/access/test_denial_windows.py"),
            docs=("docs/identity.md#local-sign-in-and-lockout", "docs/identity.md#authentication-events",
                  "docs/access.md#the-access-check"),
        ),
        Requirement(
            "10.2.1.5", "Changes to identification and authentication credentials",
            "Audit logs capture all changes to identification and authentication credentials, including creation "
            "of new accounts, elevation of privileges, and all changes, additions or deletions to accounts with "
            "administrative access.",
            "met",
            events=(*_ACCOUNTS, *_ROLE_CHANGES, *_TOKENS, "auth.password_changed", "mlflow.identity_linked",
                    "mlflow.identity_unlinked"),
            fields=("actor", "subject (user:<id>)", "payload.role", "payload.reason"),
            controls=("Accounts are created only by user_register, roles changed only by the role services "
                      "(by hand or from the identity provider's groups claim at sign-in, with the provider "
                      "named in the reason), tokens created and revoked by services: each a ledger entry.",),
            tests=(_T_ROLES, "tests/access/test_token_admin.py", "tests/audit/pii/test_user_register.py",
                   "tests/access/test_account_close.py", "tests/access/test_authentication_events.py",
                   "tests/identity/test_sso.py"),
            docs=("docs/access.md#roles-and-closing-accounts", "docs/identity.md#authentication-events"),
        ),
        Requirement(
            "10.2.1.6", "Initialization, stopping or pausing of the audit logs",
            "Audit logs capture all initialization of new audit logs and starting, stopping or pausing of the "
            "existing audit logs.",
            "partial",
            events=("ledger.verified", *_LEDGER_KEYS),
            fields=("payload.ok", "payload.tree_size", "payload.reason"),
            controls=("The ledger has no off switch: a state change without its entry is rolled back, and the "
                      "tables are append-only (database triggers refuse UPDATE and DELETE, and TRUNCATE on "
                      "PostgreSQL).",
                      "The scheduled verification records each run (ledger.verified) and a failure as an "
                      "integrity violation, so a stopped or damaged ledger is seen."),
            tests=(_T_TRIGGERS, "tests/ops/test_integrity.py"),
            docs=("docs/ledger.md#tamper-evidence", "docs/ledger.md#verification"),
            gap="Starting and stopping the application or the database are not ledger entries: they are in "
                "the process supervisor's and the database's logs (docs/operations.md).",
        ),
        Requirement(
            "10.2.1.7", "Creation and deletion of system-level objects",
            "Audit logs capture all creation and deletion of system-level objects.",
            "partial",
            events=("model.registered", "model.version_registered", "environment.created", "dataset.created",
                    "access.service_account_created", "lineage.linked", "auth.account_closed"),
            fields=("subject", "actor"),
            controls=("The product's own objects (models, versions, environments, datasets, service accounts) "
                      "are created by services that record them; nothing is deleted (accounts are closed).",),
            tests=(_T_PROMOTIONS, "tests/access/test_catalog.py"),
            docs=("docs/event-types.md",),
            gap="Operating-system and database objects (files, tables, database roles) are the platform's logs.",
        ),
        Requirement(
            "10.2.2", "Details recorded for each auditable event",
            "Audit logs record, for each auditable event: user identification, type of event, date and time, "
            "success or failure indication, origin of event, and identity or name of the affected data, system "
            "component, resource or service.",
            "partial",
            events=(),
            fields=("user identification: actor (type, id)", "type of event: event_type",
                    "date and time: timestamp (UTC, microseconds)",
                    "success or failure: the event type (login_succeeded / login_failed, check_denied, "
                    "deploy_failed, webhook_refused, ledger.verified ok)",
                    "origin: request_id on every entry; payload.origin (the client address, personal data) on "
                    "sign-in events", "affected resource: subject (type, id)"),
            controls=("Every entry has the same envelope (actor, event_type, timestamp, subject, and the request_id "
                      "of the request that caused it), hashed into the chain; record() refuses an entry without "
                      "an actor, a registered type or a subject.",
                      "Addresses are personal data: kept out of the hashed body through the commitment scheme."),
            tests=("tests/audit/integration/test_record.py", "tests/audit/integration/test_request_id.py",
                   _T_NO_PII),
            docs=("docs/ledger-format.md", "docs/pii.md"),
            gap="The client address is recorded on authentication events only; other entries carry the "
                "request_id, which the web server's access log maps to an address.",
        ),
        Requirement(
            "10.3", "Audit logs are protected from destruction and unauthorized modifications",
            "10.3.1 read access limited to a need; 10.3.2 protected from modification; 10.3.3 promptly backed up "
            "to a central log server or media that is difficult to modify; 10.3.4 file-integrity monitoring or "
            "change detection on audit logs.",
            "partial",
            events=("ledger.verified", "compliance.violation", *_AUDIT_LOG_READS),
            fields=("entry_hash", "prev_hash", "checkpoint (tree size, root, signatures)"),
            controls=("10.3.1: the ledger explorer and exports are for InfoSec and auditors only, and every read "
                      "is itself recorded (10.2.1.3).",
                      "10.3.2: append-only tables (database triggers), a hash chain and a Merkle tree whose "
                      "signed checkpoints are cosigned by independent witnesses.",
                      "10.3.4: scheduled incremental and full verification (ledger.verified), an integrity "
                      "violation and an alert when it fails; bundles verify offline with verify.py."),
            tests=(_T_TAMPER, _T_TRIGGERS, "tests/ops/test_integrity.py", "tests/audit/witnessing/test_quorum.py"),
            docs=("docs/ledger.md#tamper-evidence", "docs/witness.md", "docs/verifying.md"),
            gap="10.3.3: the witnesses keep the checkpoints, not the entries; backing up the database to media "
                "that is difficult to modify is the operator's (docs/deploy.md).",
        ),
        Requirement(
            "10.5.1", "Retain audit log history for at least 12 months, three months immediately available",
            "Retain audit log history for at least 12 months, with at least the most recent three months "
            "immediately available for analysis.",
            "met",
            events=("privacy.retention_erased", "privacy.legal_hold_created", "privacy.legal_hold_released"),
            fields=("timestamp",),
            controls=("Ledger entries are never deleted, and all of them stay online in the database (the "
                      "explorer, the API and exports read them directly).",
                      "Only personal values expire (crypto-shredded), per retention class: access logs "
                      "(class pci_dss) after 365 days, identity events (auth.*, class sox) after 7 years; "
                      "legal holds suspend erasure."),
            tests=(_T_RETENTION,),
            docs=("docs/retention.md#retention-classes",),
        ),
    ),
)

DORA = Framework(
    "dora-rts-2024-1774", "DORA: RTS on the ICT risk management framework",
    "Commission Delegated Regulation (EU) 2024/1774 supplementing Regulation (EU) 2022/2554 (DORA); article "
    "numbers as in the Official Journal text",
    (
        Requirement(
            "Art. 12", "Logging",
            "Logging procedures, protocols and tools: which events are logged, their protection against tampering "
            "and unauthorised access, retention, and clock synchronisation.",
            "partial",
            events=(*_SIGN_INS, *_AUTH_FAILURES, *_AUDIT_LOG_READS, "ledger.verified"),
            fields=_ENTRY_FIELDS,
            controls=("The events of PCI DSS 10.2.1 above, in a tamper-evident ledger (10.3) retained as in "
                      "10.5.1; timestamps are UTC from the application server.",),
            tests=(_T_TAMPER, _T_RETENTION),
            docs=("docs/ledger.md", "docs/retention.md"),
            gap="Clock synchronisation (NTP) of the servers is the operator's; infrastructure logs are outside "
                "the product.",
        ),
        Requirement(
            "Art. 17", "ICT change management, including emergency changes",
            "Changes to ICT systems are recorded, tested, assessed and approved before they are made; emergency "
            "changes follow a documented procedure and are assessed and approved after the fact.",
            "met",
            events=(*_PROMOTIONS, *_BREAK_GLASS, *_RULE_CHANGES, *_OUT_OF_BAND, *_ADMISSION, *_CI_EVIDENCE),
            fields=("payload.gates (the evidence)", "payload.approvers", "payload.reason"),
            controls=("A model reaches an environment only through a promotion: policy gates evaluated on "
                      "evidence, separation of duties, approvals bound to that evidence; the rules themselves "
                      "change under two-person control (governance_change.*).",
                      "An emergency change is a break-glass promotion: deployed at once, then reviewed by "
                      "someone else within a deadline (promotion.break_glass_reviewed), and an unjustified one "
                      "is recorded as such.",
                      "A change made outside the process (an MLflow alias moved by hand) is detected, reverted "
                      "and recorded as a compliance violation to acknowledge.",
                      "In Kubernetes namespaces mapped to an environment, the admission webhook refuses a "
                      "workload whose model version is not approved there, or whose artifact digest is not the "
                      "approved one; each decision is recorded (admission.*)."),
            tests=(_T_PROMOTIONS, _T_BREAK_GLASS, _T_CHANGES, "tests/governance/test_alias_reconcile.py",
                   _T_ADMISSION),
            docs=("docs/promotions.md#break-glass-and-its-review",
                  "docs/promotions.md#two-person-control-over-the-rules",
                  "docs/promotions.md#out-of-band-alias-changes", "docs/admission.md"),
        ),
        Requirement(
            "Art. 21", "Access control",
            "Logical access on need-to-know and least privilege, with privileged access restricted and logged, "
            "strong authentication, and periodic review of access rights.",
            "met",
            events=(*_GRANTS, *_REQUESTS, *_REVIEWS, *_ROLE_CHANGES, "auth.step_up", *_AUTH_FAILURES,
                    "auth.token_first_use_from_address"),
            fields=("actor", "subject", "payload.expires_at", "payload.justification"),
            controls=("Time-limited grants with a justification, requested and approved by someone else; "
                      "periodic access reviews whose undecided items are revoked at the deadline; approvals "
                      "and other sensitive actions need a recent second factor (step-up) when MFA_REQUIRED is on.",),
            tests=(_T_GRANTS, _T_REVIEWS, _T_ROLES, "tests/access/test_step_up.py", "tests/identity/test_sso.py"),
            docs=("docs/access.md#access-reviews", "docs/access.md#grants",
                  "docs/identity.md#multi-factor-for-sensitive-actions"),
        ),
    ),
)

AI_ACT = Framework(
    "eu-ai-act", "EU AI Act: logging of high-risk AI systems",
    "Regulation (EU) 2024/1689 (Artificial Intelligence Act), Articles 12, 19 and 26(6)",
    (
        Requirement(
            "Art. 12", "Record-keeping",
            "High-risk AI systems technically allow the automatic recording of events (logs) over their lifetime, "
            "for identifying risks, post-market monitoring and monitoring of their operation.",
            "partial",
            events=("model.registered", "model.version_registered", "model.version_classified", "lineage.linked",
                    *_PROMOTIONS, "promotion.progress_reported"),
            fields=("subject (model_version:<model>/<version>)", "payload (runtime events: open payload)"),
            controls=("Every version's registration, training-data lineage and classification, promotion, "
                      "deployment and rollback is a ledger entry; serving and monitoring systems send their "
                      "own events (deployment.*, monitoring.*, incident.*) through POST /api/v1/events.",),
            tests=(_T_PROMOTIONS, "tests/api/test_events_api.py", "tests/access/test_lineage_promotions.py"),
            docs=("docs/event-types.md", "docs/promotions.md"),
            gap="Recording each inference (inputs, reference data, the persons verifying results: Art. 12(3) "
                "for biometric systems) is the serving system's; the ledger keeps what it is sent.",
        ),
        Requirement(
            "Art. 19", "Automatically generated logs",
            "Providers keep the automatically generated logs under their control for a period appropriate to "
            "the intended purpose, of at least six months.",
            "met",
            events=("privacy.retention_erased",),
            fields=("timestamp",),
            controls=("Entries are never deleted; personal values in runtime telemetry are kept at least 183 "
                      "days (retention class eu_ai_act) before they may be crypto-shredded.",),
            tests=(_T_RETENTION,),
            docs=("docs/retention.md#retention-classes",),
        ),
        Requirement(
            "Art. 26(6)", "Deployers keep the logs for at least six months",
            "Deployers of high-risk AI systems keep the logs automatically generated by the system, to the extent "
            "under their control, for at least six months.",
            "met",
            events=("privacy.retention_erased", "privacy.legal_hold_created"),
            fields=("timestamp",),
            controls=("As Art. 19: the eu_ai_act retention class is 183 days, and legal holds suspend erasure.",),
            tests=(_T_RETENTION,),
            docs=("docs/retention.md#legal-holds",),
        ),
    ),
)

SOX = Framework(
    "sox-itgc", "SOX IT general controls",
    "Sarbanes-Oxley Act s. 404 as assessed under PCAOB AS 2201: IT general controls over change management "
    "and logical access",
    (
        Requirement(
            "ITGC change management", "Changes are authorised, tested and approved before production",
            "Changes to systems that affect financial reporting are requested, tested, approved by someone other "
            "than the developer, and traceable; emergency changes are approved after the fact.",
            "met",
            events=(*_PROMOTIONS, *_BREAK_GLASS, *_RULE_CHANGES, *_OUT_OF_BAND, *_ADMISSION, *_CI_EVIDENCE,
                    "auth.step_up"),
            fields=("actor", "payload.approvers", "payload.gates"),
            controls=("As DORA Art. 17: promotions with gates and separated approvals (with a recent second "
                      "factor), break-glass reviewed afterwards, two-person control over the rules, "
                      "out-of-band changes reverted and recorded as violations.",),
            tests=(_T_PROMOTIONS, _T_BREAK_GLASS, _T_CHANGES, "tests/governance/test_promotion_concurrency.py",
                   "tests/access/test_step_up.py"),
            docs=("docs/promotions.md#separation-of-duties", "docs/promotions.md#break-glass-and-its-review"),
        ),
        Requirement(
            "ITGC access reviews", "Logical access is granted, reviewed and removed",
            "Access is granted on approval, reviewed periodically by its owners, and removed when no longer "
            "needed (leavers, inactivity).",
            "met",
            events=(*_REVIEWS, *_GRANTS, *_REQUESTS, *_ROLE_CHANGES, "auth.account_disabled", "auth.account_closed"),
            fields=("payload.decision", "payload.revoked"),
            controls=("Access review campaigns with per-item decisions and automatic revocation at the deadline; "
                      "roles follow the identity provider's groups at each sign-in; accounts not seen for "
                      "OIDC_INACTIVE_DAYS are disabled by a scheduled job.",),
            tests=(_T_REVIEWS, _T_ROLES, "tests/access/test_account_close.py", "tests/identity/test_sso.py"),
            docs=("docs/access.md#access-reviews", "docs/access.md#roles-and-closing-accounts",
                  "docs/identity.md#roles-from-the-identity-provider"),
        ),
    ),
)

FRAMEWORKS: tuple[Framework, ...] = (PCI, DORA, AI_ACT, SOX)


def event_names() -> list[str]:
    """Every event type the mapping names, sorted."""
    return sorted({e for f in FRAMEWORKS for r in f.requirements for e in r.events})


def test_paths() -> list[str]:
    return sorted({t for f in FRAMEWORKS for r in f.requirements for t in r.tests})


def doc_refs() -> list[str]:
    return sorted({d for f in FRAMEWORKS for r in f.requirements for d in r.docs})


def _requirement(r: Requirement) -> dict[str, Any]:
    return {"id": r.id, "title": r.title, "asks": r.asks, "status": r.status, "events": list(r.events),
            "fields": list(r.fields), "controls": list(r.controls), "tests": list(r.tests), "docs": list(r.docs),
            "gap": r.gap}


def mapping() -> dict[str, Any]:
    """The whole mapping as JSON-ready data."""
    return {
        "format": FORMAT,
        "frameworks": [{"id": f.id, "title": f.title, "source": f.source,
                        "requirements": [_requirement(r) for r in f.requirements]} for f in FRAMEWORKS],
    }


def mapping_json() -> str:
    return json.dumps(mapping(), indent=1, ensure_ascii=False) + "\n"


def scope_summary(counts: Mapping[str, int]) -> dict[str, Any]:
    """The mapping for one export's scope: ``counts`` is the number of entries of each event type in it.

    Every requirement is listed (a requirement with no entries in the scope says so: an export of one model
    holds no sign-ins), with its status and, when not met, its gap, and its events in mapping order, each with
    its count, zero included, and the total. What each asks, its fields, controls and tests are in
    docs/compliance.md (the same source).
    """
    out = []
    for f in FRAMEWORKS:
        reqs = []
        for r in f.requirements:
            found = [(e, int(counts.get(e, 0))) for e in r.events]
            reqs.append({"id": r.id, "title": r.title, "status": r.status, "gap": r.gap,
                         "entries": sum(n for _, n in found), "events": [{"type": e, "entries": n} for e, n in found]})
        out.append({"id": f.id, "title": f.title, "requirements": reqs})
    return {"format": FORMAT, "document": "docs/compliance.md", "frameworks": out}


def slug(heading: str) -> str:
    """A Markdown heading's anchor as GitHub makes it (lower case, punctuation dropped, spaces as hyphens)."""
    return "".join(c for c in heading.strip().lower() if c.isalnum() or c in " -_").replace(" ", "-")


def _heading(r: Requirement) -> str:
    return f"{r.id}: {r.title}"


def _md(text: str) -> str:
    """Prose for Markdown: ``<name>`` placeholders escaped so renderers do not take them for HTML tags."""
    return text.replace("<", "\\<")


def _code_list(items: tuple[str, ...]) -> str:
    return ", ".join(f"`{i}`" for i in items) if items else "(none: see the fields and controls)"


def _doc_link(ref: str) -> str:
    path, _, anchor = ref.partition("#")
    name = path.removeprefix("docs/")
    return f"[{name}{'#' + anchor if anchor else ''}]({name}{'#' + anchor if anchor else ''})"


def markdown() -> str:
    """docs/compliance.md."""
    out = [
        "# Regulation mapping",
        "",
        "<!-- Generated from audit/compliance.py by `python manage.py compliance_map`: do not edit by hand"
        " (tests/audit/test_compliance.py fails when this file is stale). -->",
        "",
        "Which requirement of PCI DSS, DORA, the EU AI Act and SOX each ledger event, entry field, control and"
        " test of this product answers, and where the answer is only partial, what is missing and whose it is."
        " One source (`audit/compliance.py`) gives this page, the `compliance` member of every export bundle's"
        " `manifest.json` and the *Regulation mapping* section of the audit pack (HTML and PDF), which count"
        " the entries of each requirement's event types in the export's scope"
        " (see [export-format.md](export-format.md#compliance-in-the-manifest)).",
        "",
        "This is a map of evidence, not an attestation: an assessor decides whether it is enough. Event types"
        " are described in [event-types.md](event-types.md); every entry carries the same envelope (actor,"
        " event type, UTC timestamp, subject, request id: [ledger-format.md](ledger-format.md)).",
        "",
        "Status: " + "; ".join(f"**{k}**: {v}" for k, v in STATUSES.items()) + ".",
        "",
    ]
    for f in FRAMEWORKS:
        out += [f"## {f.title}", "", f"Source: {f.source}.", "",
                "| requirement | status | events |", "|---|---|---|"]
        for r in f.requirements:
            out.append(f"| [{r.id}](#{slug(_heading(r))}) {r.title} | {r.status} | {len(r.events)} |")
        out.append("")
        for r in f.requirements:
            out += [f"### {_heading(r)}", "", r.asks, "", f"*Status: {r.status}.*", "",
                    f"* **Events:** {_code_list(r.events)}",
                    f"* **Fields:** {_md('; '.join(r.fields)) if r.fields else '(the entry envelope)'}"]
            out += [f"* **Control:** {_md(c)}" for c in r.controls]
            out.append(f"* **Tests:** {', '.join(f'`{t}`' for t in r.tests)}")
            out.append(f"* **Docs:** {', '.join(_doc_link(d) for d in r.docs)}")
            if r.gap:
                out.append(f"* **Gap:** {_md(r.gap)}")
            out.append("")
    out += [
        "## Keeping it true",
        "",
        f"`tests/audit/test_compliance.py` fails when this page is stale, when the mapping names an event type"
        f" that is not registered, a test file that does not exist or a docs anchor that does not resolve."
        f" `python manage.py compliance_map --json` prints the mapping (format `{FORMAT}`).",
        "",
    ]
    return "\n".join(out)
