"""Retention classes, legal holds and the retention job (see docs/retention.md).

Ledger entries are never deleted: the chain and the Merkle tree must stay whole.
What expires is personal data, which the ledger body never holds (docs/pii.md):
the retention job destroys a data subject's key (crypto-shredding through
``audit.pii.data_subject_erase``) once **every** personal value of that subject
is past the retention period of the event type that carried it, unless an active
legal hold covers the subject. The granularity is the data subject, because the
key is: one value cannot be shredded without the others.

For a subject ``user:<id>`` whose account exists, the clock starts when the account
was closed (``audit.policy.account_closed_at``: the access domain's rule), never while it is open: an active
account is not touched whatever the clock says.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from audit.errors import AuditError, InvalidState, NotPermitted
from audit.event_types import registry
from audit.ledger import Actor, LedgerError, Subject, account_pk, record
from audit.lock_objects import data_subject_key_lock, legal_hold_lock, live_data_subject_key_lock
from audit.models import DataSubjectKey, Entry, LegalHold, PendingEntry, PiiValue
from audit.pii import check_data_subject, data_subject_erase
from audit.policy import Action, account_closed_at, may

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionClass:
    name: str
    days: int
    basis: str


# Periods are minimums from the regulation named; the product keeps personal data exactly that long.
CLASSES: dict[str, RetentionClass] = {
    c.name: c
    for c in (
        RetentionClass("eu_ai_act", 183, "EU AI Act Art. 19 / 26(6): logs of high-risk AI systems, at least 6 months"),
        RetentionClass("pci_dss", 365, "PCI DSS v4.0 req. 10.5.1: audit log history, at least 12 months"),
        RetentionClass("sox", 7 * 365 + 2, "SOX / SEC rule 2-06: audit evidence of financial controls, 7 years"),
    )
}
DEFAULT_CLASS = "sox"

# Exact event types first, then the domain (the part before the dot). A type in neither
# falls back to DEFAULT_CLASS, the longest one; tests require every registered domain to be listed.
BY_EVENT_TYPE: dict[str, str] = {
    "access.check_denied": "pci_dss",
    "access.check_denials_summarised": "pci_dss",
    "privacy.pii_revealed": "pci_dss",
    # Reads of the audit log (PCI DSS v4 10.2.1.3): an access log like the two above; its personal data is the
    # reader's search (docs/pii.md, "Who read what").
    "ledger.accessed": "pci_dss",
}
BY_DOMAIN: dict[str, str] = {
    # Serving and monitoring telemetry of the models: AI Act logging duty.
    "deployment": "eu_ai_act",
    "monitoring": "eu_ai_act",
    "incident": "eu_ai_act",
    # Change management, approvals, access control and identity: audit evidence for SOX ITGC.
    # Identity (auth) is long on purpose: a shredded subject can never record personal data again.
    "access": "sox",
    # Kubernetes admission decisions: change control at the cluster's door (docs/admission.md).
    "admission": "sox",
    "auth": "sox",
    "compliance": "sox",
    "dataset": "sox",
    "environment": "sox",
    "governance_change": "sox",  # two-person changes to protected environments' rules
    "ledger": "sox",
    "lineage": "sox",
    "mlflow": "sox",
    "model": "sox",
    "policy": "sox",
    "privacy": "sox",
    "promotion": "sox",
    # Outbound webhooks (integrations): who sends the audit trail where is a change to a control.
    "webhook": "sox",
}


def retention_class_for(event_type: str) -> RetentionClass:
    """The retention class of an event type (by name, then by domain, else the default)."""
    name = BY_EVENT_TYPE.get(event_type) or BY_DOMAIN.get(event_type.partition(".")[0]) or DEFAULT_CLASS
    return CLASSES[name]


def is_mapped(event_type: str) -> bool:
    """Whether the event type's class is chosen explicitly rather than by the default."""
    return event_type in BY_EVENT_TYPE or event_type.partition(".")[0] in BY_DOMAIN


def pii_event_types() -> list[str]:
    return [t.name for t in registry.all() if t.pii_fields]


# --- legal holds ------------------------------------------------------------------------------------------


class RetentionError(AuditError):
    pass


_MAX_REASON = 2000


def _text(value: object, label: str, max_length: int, *, required: bool = True) -> str:
    if not isinstance(value, str):
        raise RetentionError(f"{label} must be text")
    value = value.strip()
    if required and not value:
        raise RetentionError(f"a {label} is required")
    if len(value) > max_length:
        raise RetentionError(f"the {label} is longer than {max_length} characters")
    if any(ord(c) < 0x20 and c not in "\n\t" for c in value):
        raise RetentionError(f"the {label} must not contain control characters")
    return value


def _data_subject(value: object) -> str:
    try:
        return check_data_subject(value.strip() if isinstance(value, str) else value)
    except LedgerError as exc:
        raise RetentionError(str(exc)) from None


def _require_infosec(user: User, what: str) -> None:
    if not may(user, Action.MANAGE_LEGAL_HOLDS):
        raise NotPermitted(f"only InfoSec may {what}")


def _subject_of(data_subject: str) -> Subject:
    kind, _, ident = data_subject.partition(":")
    return Subject(kind, ident)


@transaction.atomic
def legal_hold_create(
    *, actor: User, data_subject: str, reason: str, reference: str = ""
) -> LegalHold:
    """Put a data subject's personal data on legal hold: retention will not erase it until released."""
    _require_infosec(actor, "create a legal hold")
    data_subject = _data_subject(data_subject)
    reason = _text(reason, "reason", _MAX_REASON)
    reference = _text(reference, "reference", 200, required=False)
    # Lock the subject's key row (when there is one): the retention job locks it too before
    # erasing, so a hold and an erasure of the same subject never interleave.
    key = data_subject_key_lock(data_subject)
    if key is not None and key.erased_at is not None:
        raise InvalidState(f"the personal data of {data_subject} was already erased; there is nothing to hold")
    if LegalHold.objects.filter(data_subject=data_subject, released_at__isnull=True).exists():
        raise InvalidState(f"{data_subject} is already under an active legal hold")
    try:
        with transaction.atomic():
            hold = LegalHold.objects.create(
                data_subject=data_subject, reason=reason, reference=reference, created_by=actor,
                created_at=timezone.now(),
            )
    except IntegrityError:  # a concurrent create won the one-active-hold constraint
        raise InvalidState(f"{data_subject} is already under an active legal hold") from None
    payload = {"hold_id": hold.pk, "data_subject": data_subject, "reason": reason}
    if reference:
        payload["reference"] = reference
    record(event_type="privacy.legal_hold_created", actor=Actor.user(actor), subject=_subject_of(data_subject),
           payload=payload)
    return hold


@transaction.atomic
def legal_hold_release(*, actor: User, hold: LegalHold, reason: str) -> LegalHold:
    """Release an active legal hold; the subject's data is again subject to retention."""
    _require_infosec(actor, "release a legal hold")
    reason = _text(reason, "reason", _MAX_REASON)
    hold = legal_hold_lock(hold.pk)
    if hold.released_at is not None:
        raise InvalidState(f"legal hold #{hold.pk} was already released")
    hold.released_at = timezone.now()
    hold.released_by = actor
    hold.release_reason = reason
    hold.save(update_fields=["released_at", "released_by", "release_reason"])
    record(event_type="privacy.legal_hold_released", actor=Actor.user(actor),
           subject=_subject_of(hold.data_subject),
           payload={"hold_id": hold.pk, "data_subject": hold.data_subject, "reason": reason})
    return hold


def active_holds() -> set[str]:
    return set(LegalHold.objects.filter(released_at__isnull=True).values_list("data_subject", flat=True))


# --- the retention job --------------------------------------------------------------------------------------


@dataclass
class RetentionReport:
    dry_run: bool
    examined: int = 0
    erased: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    not_due: int = 0
    open_accounts: int = 0
    values: int = 0
    stopped_early: bool = False

    def __str__(self) -> str:
        verb = "would erase" if self.dry_run else "erased"
        text = (f"retention: examined {self.examined} data subject(s); {verb} {len(self.erased)} "
                f"({self.values} value(s)); {len(self.held)} on legal hold; {self.not_due} not yet due; "
                f"{self.open_accounts} account(s) not closed")
        return text + ("; stopped at the time limit (run again)" if self.stopped_early else "")


@dataclass(frozen=True)
class _Due:
    expires_at: datetime
    retention_class: str
    oldest: datetime
    values: int


_REF_BATCH = 200


def _value_classes(refs: list[str]) -> dict[str, str]:
    """The event type carrying each personal-value reference (canonical JSON holds ``"pii":"<ref>"``)."""
    types = pii_event_types()
    found: dict[str, str] = {}
    for i in range(0, len(refs), _REF_BATCH):
        batch = refs[i:i + _REF_BATCH]
        cond = Q()
        for ref in batch:
            cond |= Q(payload_json__contains=f'"pii":"{ref}"')
        for model in (Entry, PendingEntry):
            for et, pj in model.objects.filter(event_type__in=types).filter(cond).values_list(
                "event_type", "payload_json"
            ):
                for ref in batch:
                    if f'"pii":"{ref}"' in pj:
                        found[ref] = et
    return found


_OPEN = object()


def _account_clock(data_subject: str) -> datetime | object | None:
    """When the retention clock of an account's subject started: the account's closure; ``_OPEN`` while the
    account is open (or closed without a recorded time); None when the subject is not an existing account
    (its values' own times count)."""
    pk = account_pk(data_subject)
    if pk is None:
        return None
    user = User.objects.select_related("service_account").filter(pk=pk).first()
    if user is None:
        return None
    closed = account_closed_at(user)
    return _OPEN if closed is None else closed


def _due(key: DataSubjectKey, clock_start: datetime | None = None) -> _Due | None:
    """When every personal value of the subject has expired, with the class that expires last. A value's
    period runs from its creation, or from ``clock_start`` (the account's closure) when that is later."""
    values = list(PiiValue.objects.filter(subject_key=key).values_list("ref", "created_at"))
    if not values:
        return None
    types = _value_classes([ref for ref, _ in values])
    latest: tuple[datetime, str] | None = None
    for ref, created in values:
        # A value whose entry is not found (yet) keeps the default, longest class.
        cls = retention_class_for(types[ref]) if ref in types else CLASSES[DEFAULT_CLASS]
        start = max(created, clock_start) if clock_start is not None else created
        expires = start + timedelta(days=cls.days)
        if latest is None or expires > latest[0]:
            latest = (expires, cls.name)
    assert latest is not None
    return _Due(latest[0], latest[1], min(c for _, c in values), len(values))


def _candidates(now: datetime, after_id: int, limit: int) -> list[int]:
    """Unerased subjects whose newest value is older than the shortest class of any personal event type."""
    shortest = min((retention_class_for(t).days for t in pii_event_types()), default=None)
    if shortest is None:
        return []
    return list(
        DataSubjectKey.objects.filter(erased_at__isnull=True, pk__gt=after_id)
        .annotate(newest=Max("values__created_at"))
        .filter(newest__lt=now - timedelta(days=shortest))
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


@transaction.atomic
def _erase_one(key_id: int, now: datetime, report: RetentionReport) -> None:
    key = live_data_subject_key_lock(key_id)
    if key is None:  # erased meanwhile (idempotent)
        return
    report.examined += 1
    if LegalHold.objects.filter(data_subject=key.data_subject, released_at__isnull=True).exists():
        report.held.append(key.data_subject)
        return
    clock = _account_clock(key.data_subject)
    if clock is _OPEN:  # a person still using the product: their data is never due, whatever the clock
        report.open_accounts += 1
        return
    due = _due(key, clock if isinstance(clock, datetime) else None)
    if due is None or due.expires_at > now:
        report.not_due += 1
        return
    report.erased.append(key.data_subject)
    report.values += due.values
    if report.dry_run:
        return
    reason = f"retention period of class {due.retention_class} expired"
    count = data_subject_erase(actor=Actor.system("retention"), data_subject=key.data_subject, reason=reason)
    record(
        event_type="privacy.retention_erased",
        actor=Actor.system("retention"),
        subject=_subject_of(key.data_subject),
        payload={"data_subject": key.data_subject, "retention_class": due.retention_class, "values": count,
                 "oldest": due.oldest.isoformat()},
    )


def retention_run(
    *, now: datetime | None = None, dry_run: bool = False, limit: int = 10_000, time_budget: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> RetentionReport:
    """Erase the personal data of every data subject past retention and not on hold. Idempotent.

    Each subject is erased in its own transaction (a failure leaves the others done).
    ``time_budget`` (seconds) stops early, leaving the rest for the next run.
    ``progress`` is called with the number of subjects examined so far.
    """
    now = now or timezone.now()
    report = RetentionReport(dry_run=dry_run)
    started = time.monotonic()
    after = 0
    remaining = limit
    while remaining > 0:
        ids = _candidates(now, after, min(remaining, 500))
        if not ids:
            break
        for key_id in ids:
            if time_budget is not None and time.monotonic() - started > time_budget:
                report.stopped_early = True
                return report
            _erase_one(key_id, now, report)  # writes nothing in a dry run
            if progress is not None:
                progress(report.examined)
        after = ids[-1]
        remaining -= len(ids)
    if report.erased and not dry_run:
        logger.info("retention erased %d data subject(s), %d value(s)", len(report.erased), report.values)
    return report
