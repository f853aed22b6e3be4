"""Writing to the ledger: ``record()`` and the sequencer.

``record()`` is called by services inside their own ``transaction.atomic``
block. It validates the event, canonicalises the payload and appends one row to
the intake queue (``PendingEntry``) in the caller's transaction, so the event
and the change it describes commit or roll back together. Writers never touch
the chain head, so concurrent writers do not contend.

``integrate()`` is the sequencer: under a row lock on ``LedgerHead`` (one
sequencer at a time, on any number of machines) it takes committed pending rows
in id order, gives each the next ``seq``, links ``prev_hash`` and
``subject_prev``, hashes it, stores the new Merkle nodes and removes the rows
from the queue, all in one transaction. A crash anywhere leaves either the
whole batch integrated or none of it. See docs/ledger-format.md.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.utils import timezone

from audit.canonical import CanonicalizationError, body_bytes, canonical_json, format_timestamp, leaf_hash
from audit.context import current_request_id
from audit.event_types import EventType, registry
from audit.lock_objects import ledger_head_lock
from audit.merkle import CompactRange, Node, node_key, root_nodes
from audit.models import Entry, MerkleNode, PendingEntry, PiiValue, SubjectHead

if TYPE_CHECKING:
    from audit.pii import PiiPlan

logger = logging.getLogger(__name__)

ACTOR_TYPES = ("user", "service", "system")


class LedgerError(ValueError):
    """An event cannot be recorded as given (the message says why)."""


class IdempotencyConflict(LedgerError):
    """An idempotency key was reused for a different event."""


class NotInTransaction(RuntimeError):
    """``record()`` was called outside ``transaction.atomic()``.

    A programming error, not bad input (so not a ``LedgerError``): an entry must commit or
    roll back with the change it describes, which only an enclosing transaction guarantees.
    """


class _KeyRace(Exception):
    pass


class PersonalData(Protocol):
    """What ``record()`` asks of the personal-data module (``audit.pii``, which imports the ledger to
    record its own events, so it registers itself here instead of being imported: see ``AuditConfig``)."""

    def check_data_subject(self, value: object) -> str: ...

    def plan(self, event_type: EventType, payload: dict[str, Any], *, data_subject: str | None,
             subject: Subject) -> PiiPlan | None: ...

    def seal(self, prepared: Sequence[tuple[PendingEntry, PiiPlan | None]]) -> list[list[PiiValue]]: ...


_personal: list[PersonalData] = []


def personal_data_register(handler: PersonalData) -> None:
    _personal[:] = [handler]


def _personal_data() -> PersonalData:
    if not _personal:
        raise LedgerError("personal data cannot be recorded: audit.pii is not loaded (the audit app is not ready)")
    return _personal[0]


@dataclass(frozen=True)
class Actor:
    """Who caused an event: a user, a service account or a system component."""

    type: str
    id: str

    @classmethod
    def user(cls, user: Any) -> Actor:
        return cls("user", str(user.pk))

    @classmethod
    def service(cls, name: str) -> Actor:
        return cls("service", name)

    @classmethod
    def system(cls, component: str) -> Actor:
        return cls("system", component)


def account_pk(reference: str) -> int | None:
    """The account id in a ``user:<pk>`` reference (an actor, a data subject); None for any other reference."""
    kind, _, ident = reference.partition(":")
    return int(ident) if kind == "user" and ident.isascii() and ident.isdigit() else None


@dataclass(frozen=True)
class Subject:
    """What an event is about, e.g. ``Subject("model_version", "fraud-detector/7")``."""

    type: str
    id: str


@dataclass(frozen=True)
class Recorded:
    """The outcome of ``record()``. ``seq`` is None until the sequencer integrates it."""

    pending_id: int
    seq: int | None
    created: bool


@dataclass(frozen=True)
class Event:
    event_type: str
    actor: Actor
    subject: Subject
    payload: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    timestamp: datetime | None = None
    # Whose personal data the payload carries (``"user:42"``); see docs/pii.md.
    data_subject: str | None = None
    # The request that caused the event; None takes the bound one (``current_request_id()``).
    request_id: str | None = None


_CONTROL = re.compile(r"[\x00-\x1f]")
# The same alphabet as audit.context accepts from clients; a request id is never free text.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# IN lists of idempotency keys are sent in slices of this many (bounded statement size on any backend).
KEY_CHUNK = 1000


def _check_text(label: str, value: object, max_length: int) -> str:
    if not isinstance(value, str) or not value:
        raise LedgerError(f"{label} must be a non-empty string")
    if len(value) > max_length:
        raise LedgerError(f"{label} is longer than {max_length} characters")
    if _CONTROL.search(value):
        raise LedgerError(f"{label} must not contain control characters")
    return value


def check_request_id(value: object) -> str:
    """A request id as it may enter a ledger body: 1 to 64 of ``A-Z a-z 0-9 . _ : -``."""
    if not isinstance(value, str) or not _REQUEST_ID.fullmatch(value):
        raise LedgerError("request id must be 1 to 64 characters of letters, digits and . _ : -")
    return value


class _Row:
    """A validated intake-queue row. Plain slots: building a model instance per event costs more than the INSERT."""

    __slots__ = (
        "actor_id", "actor_type", "event_type", "idempotency_key", "payload_json", "pk", "request_id",
        "subject_id", "subject_type", "timestamp",
    )

    def __init__(
        self, timestamp: str, event_type: str, actor_type: str, actor_id: str, subject_type: str,
        subject_id: str, payload_json: str, idempotency_key: str | None, request_id: str | None,
    ) -> None:
        self.pk: int | None = None
        self.timestamp = timestamp
        self.event_type = event_type
        self.actor_type = actor_type
        self.actor_id = actor_id
        self.subject_type = subject_type
        self.subject_id = subject_id
        self.payload_json = payload_json
        self.idempotency_key = idempotency_key
        self.request_id = request_id

    def values(self) -> tuple[Any, ...]:
        """The column values in ``_PENDING_COLUMNS`` order."""
        return (self.timestamp, self.event_type, self.actor_type, self.actor_id, self.subject_type,
                self.subject_id, self.payload_json, self.idempotency_key, self.request_id)

    def model(self) -> PendingEntry:
        # Positional: the cheap path of Model.__init__ (the field order is checked by a test).
        return PendingEntry(self.pk, *self.values())  # type: ignore[misc]

    def same_event(self, found: tuple[str, str, str, str]) -> bool:
        # The request id is left out: a client retrying from another request sends the same event.
        return found == (self.event_type, self.subject_type, self.subject_id, self.payload_json)


def _prepare(event: Event, now: str, bound_request_id: str | None) -> tuple[_Row, PiiPlan | None]:
    event_type = registry.get(event.event_type)  # UnknownEventType is a LedgerError's sibling
    actor, subject = event.actor, event.subject
    if actor.type not in ACTOR_TYPES:
        raise LedgerError(f"actor type must be one of {', '.join(ACTOR_TYPES)}, not {actor.type!r}")
    _check_text("actor id", actor.id, 200)
    _check_text("subject type", subject.type, 100)
    _check_text("subject id", subject.id, 300)
    if event.idempotency_key is not None:
        _check_text("idempotency key", event.idempotency_key, 200)
    request_id = event.request_id if event.request_id is not None else bound_request_id
    if request_id is not None:
        check_request_id(request_id)
    if not isinstance(event.payload, Mapping):
        raise LedgerError("payload must be a JSON object")
    payload = dict(event.payload)
    event_type.validate(payload)
    try:
        payload_json = canonical_json(payload)
    except CanonicalizationError as exc:
        raise LedgerError(f"payload is not representable as canonical JSON: {exc}") from None
    pii_plan = None
    if event_type.pii_fields:
        pii = _personal_data()
        # Validation only: the personal values are sealed (and leave the payload) in record_many.
        pii_plan = pii.plan(event_type, payload, data_subject=event.data_subject, subject=event.subject)
    elif event.data_subject is not None:
        _personal_data().check_data_subject(event.data_subject)
    row = _Row(
        now if event.timestamp is None else format_timestamp(event.timestamp),
        event.event_type, actor.type, actor.id, subject.type, subject.id, payload_json, event.idempotency_key,
        request_id,
    )
    return row, pii_plan


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), KEY_CHUNK):
        yield items[i : i + KEY_CHUNK]


def _existing_many(rows: Mapping[str, _Row]) -> dict[str, Recorded]:
    """The events already recorded under the rows' idempotency keys: one query per table (per 1,000 keys).

    Refuses a key reused for another event (``IdempotencyConflict``). The queue is read
    first: a row the sequencer integrates between the two reads is then found in the entries.
    """
    if not rows:
        return {}
    found: dict[str, Recorded] = {}
    for chunk in _chunks(list(rows)):
        queued = _by_keys(PendingEntry, ("idempotency_key", "id", "event_type", "subject_type", "subject_id",
                                         "payload_json"), chunk)
        for key, pk, et, st, sid, pj in queued:
            assert key is not None  # (matched an IN list of keys)
            if not rows[key].same_event((et, st, sid, pj)):
                raise IdempotencyConflict(f"idempotency key {key!r} was already used for a different event")
            found[key] = Recorded(pending_id=pk, seq=None, created=False)
    rest = [k for k in rows if k not in found]
    for chunk in _chunks(rest):
        integrated = _by_keys(Entry, ("idempotency_key", "pending_id", "seq", "event_type", "subject_type",
                                      "subject_id", "payload_json"), chunk)
        for key, pending_id, seq, et, st, sid, pj in integrated:
            assert key is not None
            if not rows[key].same_event((et, st, sid, pj)):
                raise IdempotencyConflict(f"idempotency key {key!r} was already used for a different event")
            found[key] = Recorded(pending_id=pending_id, seq=seq, created=False)
    return found


def _by_keys(model: type[PendingEntry] | type[Entry], columns: tuple[str, ...], keys: list[str]) -> list[Any]:
    """Rows whose idempotency key is in ``keys``. On PostgreSQL one array parameter
    (``= ANY(%s)``) instead of an IN list of 1,000 placeholders, which costs ~20 ms a
    batch to build and plan."""
    if connection.vendor != "postgresql":
        return list(model.objects.filter(idempotency_key__in=keys).values_list(*columns))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(columns)} FROM {model._meta.db_table} WHERE idempotency_key = ANY(%s)",
            [keys],
        )
        return list(cursor.fetchall())


def _any_used(keys: list[str]) -> bool:
    """Whether any of a few ``keys`` is in the queue or the entries (one statement)."""
    marks = ", ".join(["%s"] * len(keys))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {PendingEntry._meta.db_table} WHERE idempotency_key IN ({marks})) "
            f"OR EXISTS (SELECT 1 FROM {Entry._meta.db_table} WHERE idempotency_key IN ({marks}))",
            [*keys, *keys],
        )
        row = cursor.fetchone()
    return bool(row[0])


def _any_integrated(keys: list[str]) -> bool:
    if connection.vendor == "postgresql":
        # One array parameter, as in _by_keys: an IN list of 1,000 placeholders costs more than the lookup.
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM audit_entry WHERE idempotency_key = ANY(%s) LIMIT 1", [keys])
            return cursor.fetchone() is not None
    return any(Entry.objects.filter(idempotency_key__in=chunk).exists() for chunk in _chunks(keys))


def record(
    *,
    event_type: str,
    actor: Actor,
    subject: Subject,
    payload: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    timestamp: datetime | None = None,
    data_subject: str | None = None,
    request_id: str | None = None,
) -> Recorded:
    """Append one event to the ledger in the current transaction (``NotInTransaction`` without one).

    Raises ``UnknownEventType``, ``InvalidPayload`` or ``LedgerError`` (all
    ``ValueError``) on bad input, before anything is written. A repeated
    ``idempotency_key`` returns the event already recorded and writes nothing.

    Personal fields (``Field(pii=True)``) are kept out of the hashed body: they are
    encrypted under the key of ``data_subject`` (default ``"user:<id>"`` when the
    subject is a user; required otherwise) and replaced by a reference object.

    The entry carries the request id bound by ``audit.context`` (the
    HTTP request, or a task's ``request_id_bound``) unless ``request_id`` is given.
    """
    if idempotency_key is None and data_subject is None:
        recorded = _record_plain(event_type, actor, subject, payload or {}, timestamp, request_id)
        if recorded is not None:
            return recorded
    event = Event(event_type, actor, subject, payload or {}, idempotency_key, timestamp, data_subject, request_id)
    return record_many([event])[0]


def _record_plain(
    event_type: str, actor: Actor, subject: Subject, payload: Mapping[str, Any], timestamp: datetime | None,
    request_id: str | None,
) -> Recorded | None:
    """``record()`` of the commonest event (no idempotency key, no personal data) in one pass.

    The same checks in the same order as ``record_many`` → ``_prepare`` (so the same errors), the
    same row, the same on-commit hook; only the glue is left out: no ``Event``, no batch, no key
    bookkeeping, and on PostgreSQL the INSERT goes through a cursor kept on the connection instead
    of a new Django cursor per call. Returns None, having written and raised nothing, for an event
    type with personal fields: the general path handles those. The INSERT runs in the caller's
    transaction like any other statement: a failure there leaves nothing behind but the caller's
    rollback (no savepoint is needed, since without a key nothing can conflict).
    """
    conn = connections[DEFAULT_DB_ALIAS]
    if not conn.in_atomic_block:
        raise NotInTransaction(
            "record() must run inside transaction.atomic(): the entry commits with the change it describes"
        )
    kind = registry.get(event_type)
    if kind.pii_fields:
        return None
    if actor.type not in ACTOR_TYPES:
        raise LedgerError(f"actor type must be one of {', '.join(ACTOR_TYPES)}, not {actor.type!r}")
    _check_text("actor id", actor.id, 200)
    _check_text("subject type", subject.type, 100)
    _check_text("subject id", subject.id, 300)
    if request_id is None:
        request_id = current_request_id()
    if request_id is not None:
        check_request_id(request_id)
    if not isinstance(payload, Mapping):
        raise LedgerError("payload must be a JSON object")
    body = dict(payload)
    kind.validate(body)
    try:
        payload_json = canonical_json(body)
    except CanonicalizationError as exc:
        raise LedgerError(f"payload is not representable as canonical JSON: {exc}") from None
    row = _Row(
        format_timestamp(timezone.now() if timestamp is None else timestamp),
        event_type, actor.type, actor.id, subject.type, subject.id, payload_json, None, request_id,
    )
    _insert_one(conn, row)
    _schedule_integration()
    return Recorded(pending_id=row.pk, seq=None, created=True)  # type: ignore[arg-type]


def _insert_one(conn: Any, row: _Row) -> None:
    """INSERT one row on ``conn`` (a Django connection in an atomic block) and set its id.

    On PostgreSQL the statement is sent on a psycopg cursor kept on the connection, with
    Django's own checks (health check, thread sharing, broken transaction) and error
    translation: what a Django cursor adds per call beyond that is its construction. Where
    something watches the queries (``execute_wrappers``, ``CaptureQueriesContext``, DEBUG),
    the Django cursor is used, so they see the INSERT.
    """
    if conn.vendor != "postgresql" or conn.execute_wrappers or conn.queries_logged:
        _insert_pending([row])
        return
    conn.close_if_health_check_failed()
    pg = conn.connection
    if pg is None:  # closed by the health check: Django's cursor raises what it raises then
        _insert_pending([row])
        return
    conn.validate_thread_sharing()
    conn.validate_no_broken_transaction()
    cached = conn.__dict__.get("_ledger_cursor")
    if cached is None or cached[0] is not pg:
        cached = conn._ledger_cursor = (pg, pg.cursor())
    cursor = cached[1]
    with conn.wrap_database_errors:
        cursor.execute(_PENDING_INSERT, row.values())
        row.pk = cursor.fetchone()[0]


def record_many(events: Sequence[Event]) -> list[Recorded]:
    """Append several events in one statement (same guarantees as ``record``).

    Events without a timestamp share the batch's one recording time. Refused
    (``NotInTransaction``, nothing written) outside ``transaction.atomic()``.
    """
    if not transaction.get_connection().in_atomic_block:
        raise NotInTransaction(
            "record() must run inside transaction.atomic(): the entry commits with the change it describes"
        )
    now = format_timestamp(timezone.now())
    bound = current_request_id()
    checked = [_prepare(e, now, bound) for e in events]
    if not any(pii_plan for _, pii_plan in checked):
        return _append([p for p, _ in checked], None)
    pii = _personal_data()
    # Sealing may create data subjects' keys: a refusal further on takes them back too.
    with transaction.atomic():
        models = [(row.model(), pii_plan) for row, pii_plan in checked]
        sealed = pii.seal(models)
        for (row, _), (model, _) in zip(checked, models, strict=True):
            row.payload_json = model.payload_json
        return _append([p for p, _ in checked], sealed)


def _append(prepared: list[_Row], personal: list[list[PiiValue]] | None) -> list[Recorded]:
    """Insert validated (and sealed) rows, with the encrypted personal values of the fresh ones."""
    if not prepared:
        return []
    keyed: dict[str, _Row] = {}
    for p in prepared:
        key = p.idempotency_key
        if key is not None:
            if key in keyed:
                raise LedgerError(f"idempotency key {key!r} appears twice in one batch")
            keyed[key] = p
    if not keyed:
        # No idempotency keys: nothing can conflict, so no savepoint (two round trips saved per write).
        _insert_pending(prepared)
        if personal is not None:
            PiiValue.objects.bulk_create([v for values in personal for v in values], batch_size=500)
        _schedule_integration()
        return [Recorded(pending_id=p.pk, seq=None, created=True) for p in prepared]  # type: ignore[arg-type]
    # Optimistic first: nearly every keyed write is new, and the unique index probes each key while
    # inserting anyway, so looking the keys up beforehand (one index probe per key in the queue and in
    # the entries: ~40 ms for a 1,000-event batch) mostly buys nothing. A key used before fails the
    # insert; the savepoint takes the batch back and the careful path below decides, as it always did.
    # A client's retry re-sends the same keys, so probing the first and last key sends a retry straight
    # to the careful path (no failed insert).
    keys = list(keyed)
    if _any_used(list({keys[0], keys[-1]})):
        return _append_checked(prepared, keyed, personal)
    try:
        with transaction.atomic():
            _insert_pending(prepared)
            if personal is not None:
                PiiValue.objects.bulk_create([v for values in personal for v in values], batch_size=500)
            # A key integrated (and so gone from the queue): the sequencer would drop our row as a copy.
            if _any_integrated(keys):
                raise _KeyRace
    except (IntegrityError, _KeyRace):
        for p in prepared:
            p.pk = None
        for v in (v for values in personal or () for v in values):
            v.pk = None
        return _append_checked(prepared, keyed, personal)
    _schedule_integration()
    return [Recorded(pending_id=p.pk, seq=None, created=True) for p in prepared]  # type: ignore[arg-type]


def _append_checked(
    prepared: list[_Row], keyed: dict[str, _Row], personal: list[list[PiiValue]] | None
) -> list[Recorded]:
    """``_append`` when some idempotency key was used before: look the keys up, insert only the new events."""
    existing = _existing_many(keyed)
    results: list[Recorded | None] = [
        existing.get(p.idempotency_key) if p.idempotency_key is not None else None for p in prepared
    ]
    fresh = [(i, p) for i, p in enumerate(prepared) if results[i] is None]
    if not fresh:
        return results  # type: ignore[return-value]
    rows = [p for _, p in fresh]
    keys = [p.idempotency_key for p in rows if p.idempotency_key is not None]
    try:
        with transaction.atomic():
            _insert_pending(rows)
            if personal is not None:
                PiiValue.objects.bulk_create([v for i, _ in fresh for v in personal[i]], batch_size=500)
            # A key integrated (and so gone from the queue) since we looked: the
            # sequencer would drop our row as a copy, losing this event silently.
            if keys and _any_integrated(keys):
                raise _KeyRace
    except (IntegrityError, _KeyRace):
        # Another writer got one of our idempotency keys first. Row by row, all or nothing.
        with transaction.atomic():
            for i, p in fresh:
                recorded = results[i] = _record_one_after_race(p)
                if personal is not None and recorded.created and personal[i]:
                    for value in personal[i]:
                        value.pk = None
                    PiiValue.objects.bulk_create(personal[i])
    else:
        for (i, _), row in zip(fresh, rows, strict=True):
            results[i] = Recorded(pending_id=row.pk, seq=None, created=True)  # type: ignore[arg-type]
    _schedule_integration()
    return results  # type: ignore[return-value]


_PENDING_COLUMNS = (
    "timestamp", "event_type", "actor_type", "actor_id", "subject_type", "subject_id", "payload_json",
    "idempotency_key", "request_id",
)
_PENDING_INSERT = (
    f"INSERT INTO audit_pendingentry ({', '.join(_PENDING_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(_PENDING_COLUMNS))}) RETURNING id"
)
_PENDING_COPY = f"COPY audit_pendingentry (id, {', '.join(_PENDING_COLUMNS)}) FROM STDIN"


def _insert_pending(rows: list[_Row]) -> None:
    """INSERT the rows and set their ids. On PostgreSQL: one INSERT for one row, else ids + COPY."""
    if connection.vendor != "postgresql":
        models = [r.model() for r in rows]
        PendingEntry.objects.bulk_create(models, batch_size=500)
        for r, m in zip(rows, models, strict=True):
            r.pk = m.pk
        return
    with connection.cursor() as cursor:
        if len(rows) == 1:
            p = rows[0]
            cursor.execute(_PENDING_INSERT, p.values())
            p.pk = cursor.fetchone()[0]
            return
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence('audit_pendingentry', 'id')) FROM generate_series(1, %s)",
            [len(rows)],
        )
        ids = [pk for (pk,) in cursor.fetchall()]
        with connection.wrap_database_errors, cursor.cursor.copy(_PENDING_COPY) as copy:
            write_row = copy.write_row
            for pk, p in zip(ids, rows, strict=True):
                p.pk = pk
                write_row((pk, *p.values()))


def _record_one_after_race(p: _Row) -> Recorded:
    if p.idempotency_key is not None:
        existing = _existing_many({p.idempotency_key: p}).get(p.idempotency_key)
        if existing is not None:
            return existing
    with transaction.atomic():
        model = p.model()
        model.pk = None
        model.save(force_insert=True)
        p.pk = model.pk
    return Recorded(pending_id=model.pk, seq=None, created=True)


def _integrate_after_commit() -> None:
    try:
        integrate()
    except Exception:  # the beat schedule retries; the writer's commit already happened
        logger.exception("ledger integration after commit failed; it will be retried")


def _schedule_integration() -> None:
    if not settings.LEDGER_INTEGRATE_ON_COMMIT:
        return
    # One integration per transaction is enough, however many events it recorded.
    if any(item[1] is _integrate_after_commit for item in connection.run_on_commit):
        return
    transaction.on_commit(_integrate_after_commit)


# --- the sequencer --------------------------------------------------------------------


def fetch_nodes(nodes: set[Node] | list[Node]) -> dict[Node, bytes]:
    keys = [node_key(level, index) for level, index in nodes]
    rows = MerkleNode.objects.filter(key__in=keys).values_list("key", "hash")
    return {(k & 63, k >> 6): bytes(h) for k, h in rows}


def integrate(*, limit: int | None = None) -> int:
    """Sequence committed pending entries into the chain and tree. Returns how many."""
    limit = limit or settings.LEDGER_INTEGRATE_BATCH
    total = 0
    while True:
        done = _integrate_batch(limit)
        total += done
        if done < limit:
            return total


_ENTRY_COLUMNS = (
    "seq", "timestamp", "event_type", "actor_type", "actor_id", "subject_type", "subject_id", "payload_json",
    "prev_hash", "subject_prev", "entry_hash", "pending_id", "idempotency_key", "request_id",
)


def _store(entries: list[tuple[Any, ...]], nodes: list[tuple[int, bytes]], touched: dict[tuple[str, str], int]) -> None:
    if connection.vendor != "postgresql":
        Entry.objects.bulk_create([Entry(**dict(zip(_ENTRY_COLUMNS, e, strict=True))) for e in entries],
                                  batch_size=500)
        MerkleNode.objects.bulk_create([MerkleNode(key=k, hash=h) for k, h in nodes], batch_size=1000)
        if touched:
            SubjectHead.objects.bulk_create(
                [SubjectHead(subject_type=t, subject_id=i, last_seq=s) for (t, i), s in touched.items()],
                batch_size=500,
                update_conflicts=True,
                unique_fields=["subject_type", "subject_id"],
                update_fields=["last_seq"],
            )
        return
    columns = ", ".join(f'"{c}"' for c in _ENTRY_COLUMNS)
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(f"COPY audit_entry ({columns}) FROM STDIN") as copy:
            for row in entries:
                copy.write_row(row)
        with cursor.cursor.copy("COPY audit_merklenode (key, hash) FROM STDIN") as copy:
            for row in nodes:
                copy.write_row(row)
        if touched:
            types, ids, seqs = [], [], []
            for (t, i), seq in touched.items():
                types.append(t)
                ids.append(i)
                seqs.append(seq)
            cursor.execute(
                "INSERT INTO audit_subjecthead (subject_type, subject_id, last_seq) "
                "SELECT * FROM unnest(%s::varchar[], %s::varchar[], %s::bigint[]) "
                "ON CONFLICT (subject_type, subject_id) DO UPDATE SET last_seq = EXCLUDED.last_seq",
                [types, ids, seqs],
            )


_PENDING_FIELDS = ("id", *_PENDING_COLUMNS)


@transaction.atomic
def _integrate_batch(limit: int) -> int:
    head = ledger_head_lock()
    pending = list(PendingEntry.objects.order_by("id").values_list(*_PENDING_FIELDS)[:limit])
    if not pending:
        return 0
    keys = [p[8] for p in pending if p[8]]
    # A key may already be integrated if its first writer raced the sequencer; drop the copy.
    dup_keys = (
        set(Entry.objects.filter(idempotency_key__in=keys).values_list("idempotency_key", flat=True))
        if keys else set()
    )
    size = head.tree_size
    tree = CompactRange.from_nodes(size, fetch_nodes(root_nodes(size)))
    subject_ids = {p[6] for p in pending}
    heads = {
        (t, i): s
        for t, i, s in SubjectHead.objects.filter(subject_id__in=subject_ids).values_list(
            "subject_type", "subject_id", "last_seq"
        )
    }
    entries: list[tuple[Any, ...]] = []
    nodes: list[tuple[int, bytes]] = []
    touched: dict[tuple[str, str], int] = {}
    prev = head.last_hash
    for pk, ts, et, at, aid, st, sid, pj, key, rid in pending:
        if key and key in dup_keys:
            continue
        seq = tree.size
        subject = (st, sid)
        subject_prev = heads.get(subject)
        leaf = leaf_hash(
            body_bytes(
                seq=seq, timestamp=ts, event_type=et, actor_type=at, actor_id=aid, subject_type=st,
                subject_id=sid, payload_json=pj, prev_hash=prev, subject_prev=subject_prev, request_id=rid,
            )
        )
        nodes.extend((node_key(lv, ix), h) for lv, ix, h in tree.append(leaf))
        entry_hash = leaf.hex()
        entries.append((seq, ts, et, at, aid, st, sid, pj, prev, subject_prev, entry_hash, pk, key, rid))
        prev = entry_hash
        heads[subject] = seq
        touched[subject] = seq
    _store(entries, nodes, touched)
    PendingEntry.objects.filter(pk__in=[p[0] for p in pending])._raw_delete(PendingEntry.objects.db)
    head.tree_size = tree.size
    head.last_hash = prev
    head.save(update_fields=["tree_size", "last_hash", "updated_at"])
    return len(pending)
