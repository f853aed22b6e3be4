"""Personal data in the ledger by crypto-shredding (see docs/pii.md).

Event types mark personal fields with ``Field(pii=True)``. ``record()`` never
puts such a value in the hashed body: the payload keeps a reference object

    {"commitment": "<hex HMAC-SHA256>", "pii": "<ref>"}

and the value itself is stored AES-256-GCM encrypted under its data subject's
key in ``PiiValue``, outside the chain, in the same transaction as the event.
Destroying the key (``data_subject_erase``) makes every value of that person
unrecoverable while every entry hash, the chain, the Merkle tree and the signed
checkpoints stay exactly as they were.

Keys: each data subject (``"user:42"``) has 32 random bytes, stored wrapped with
the key-encryption key (``LEDGER_PII_KEK``). Two subkeys are derived from it with
HKDF-SHA256 (no salt): ``info=b"ledger-pii-v1|enc"`` encrypts, ``info=b"ledger-pii-v1|commit"``
keys the commitment HMAC. Nothing in this module logs a value, a key or a payload.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.canonical import canonical_json
from audit.errors import StepUpRequired
from audit.event_types import EventType, registry
from audit.ledger import Actor, LedgerError, Subject, account_pk, personal_data_register, record
from audit.lock_objects import (
    account_lock,
    data_subject_key_lock,
    data_subject_keys_lock,
    data_subject_keys_to_rewrap_lock,
)
from audit.models import DataSubjectKey, Entry, PendingEntry, PiiValue
from audit.policy import Action, may, step_up_refusal
from audit.signals import reveal_refused, subject_erased

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

logger = logging.getLogger(__name__)

REDACTED = "[redacted]"
ERASED = "[erased]"
MISSING = "[missing]"

DOMAIN = b"ledger-pii-v1|"
_ENC_INFO = b"ledger-pii-v1|enc"
_COMMIT_INFO = b"ledger-pii-v1|commit"
_REF_INFO = b"ledger-pii-ref-v1|"
_KEK_WRAP = b"ledger-pii-kek-v1|"
_KEK_DEV_INFO = b"ledger-pii-kek-v1|dev"
_KEK_ID_INFO = b"ledger-pii-kek-id-v1"
_NONCE = 12
_MAX_REASON = 2000

# A refused reveal is recorded as an access denial on this permission.
REVEAL_PERMISSION = "reveal_personal_data"


class PiiError(ValueError):
    """A personal-data operation cannot be carried out as asked (the message says why)."""


class PiiAccessDenied(PiiError):
    """The user may not reveal personal data (only InfoSec may)."""


class AlreadyErased(PiiError):
    """The data subject's key was destroyed before."""


class DataSubjectErased(LedgerError):
    """``record()`` was given personal data of a data subject whose key was destroyed."""


# --- keys --------------------------------------------------------------------------------------------


def _hkdf(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


_dev_kek_warned = False


def _kek() -> bytes:
    """The key-encryption key: ``LEDGER_PII_KEK`` (base64 of 32 bytes), else a dev KEK from SECRET_KEY.

    The dev KEK is refused unless DEBUG is on (or under tests): tying personal-data keys to
    SECRET_KEY would make rotating SECRET_KEY destroy every data subject's key.
    """
    global _dev_kek_warned
    configured = _configured_kek("LEDGER_PII_KEK")
    if configured is not None:
        return configured
    if not (settings.DEBUG or getattr(settings, "TESTING", False)):
        raise ImproperlyConfigured(
            "DEBUG is off: set LEDGER_PII_KEK (base64 of 32 random bytes) to protect personal data in the ledger"
        )
    if not _dev_kek_warned:
        _dev_kek_warned = True
        logger.warning("personal data keys are wrapped with a DEV key derived from SECRET_KEY; set LEDGER_PII_KEK")
    return _hkdf(str(settings.SECRET_KEY).encode(), _KEK_DEV_INFO)


def _configured_kek(name: str) -> bytes | None:
    """The 32 bytes of KEK setting ``name`` (Django settings, else the environment), None if unset."""
    configured = getattr(settings, name, None) or os.environ.get(name)
    if not configured:
        return None
    try:
        raw = base64.b64decode(configured, validate=True)
    except (binascii.Error, ValueError):
        raise ImproperlyConfigured(f"{name} must be the base64 of 32 random bytes") from None
    if len(raw) != 32:
        raise ImproperlyConfigured(f"{name} must be the base64 of 32 random bytes")
    return raw


def _previous_kek() -> bytes | None:
    """``LEDGER_PII_KEK_PREVIOUS``: the KEK a rotation moves away from, accepted for unwrapping only."""
    return _configured_kek("LEDGER_PII_KEK_PREVIOUS")


def kek_id(kek: bytes) -> str:
    """A public identifier of a KEK (16 hex digits), stored with every key it wraps."""
    return hmac.new(kek, _KEK_ID_INFO, hashlib.sha256).hexdigest()[:16]


def kek_ids() -> tuple[str, str | None]:
    """The public ids of the current KEK and of ``LEDGER_PII_KEK_PREVIOUS`` (None if unset), for reports."""
    previous = _previous_kek()
    return kek_id(_kek()), kek_id(previous) if previous is not None else None


_PSEUDONYM_INFO = b"ledger-pseudonym-v1|"


def pseudonym(purpose: str, value: str) -> str:
    """A keyed hash standing for ``value`` where no data subject can hold it in the ledger (a username
    nobody has, the address of a failed attempt against it, an address a token was seen from).

    hex HMAC-SHA256(HKDF(KEK, "ledger-pseudonym-v1|" || purpose), value): the same value gives the same
    pseudonym (attempts can be counted and correlated), different purposes give unrelated ones, and without
    the KEK nobody can test a guess (a dictionary of usernames or the 2^32 IPv4 addresses). Whoever holds the
    KEK can: it identifies a suspect value, it is not encryption. Stable while ``LEDGER_PII_KEK`` is; after a
    KEK rotation the same value gets a new pseudonym (docs/pii.md "Pseudonyms").
    """
    key = _hkdf(_kek(), _PSEUDONYM_INFO + purpose.encode())
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def _wrap(kek: bytes, data_subject: str, key: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(kek).encrypt(nonce, key, _KEK_WRAP + data_subject.encode())


def _unwrap(kek: bytes, row: DataSubjectKey) -> bytes:
    """The raw key of ``row``, unwrapped with ``kek`` (the current KEK) or, during a rotation,
    with ``LEDGER_PII_KEK_PREVIOUS`` when the row's ``kek_id`` names that one."""
    if row.key is None:
        raise DataSubjectErased(
            f"data subject {row.data_subject} was erased; their personal data cannot be recorded or read again"
        )
    if row.kek_id != kek_id(kek):
        previous = _previous_kek()
        if previous is None or row.kek_id != kek_id(previous):
            also = f" (LEDGER_PII_KEK_PREVIOUS is {kek_id(previous)})" if previous is not None else ""
            raise ImproperlyConfigured(
                f"the key of data subject {row.data_subject} is wrapped with KEK {row.kek_id}, "
                f"but the configured LEDGER_PII_KEK is {kek_id(kek)}{also}"
            )
        kek = previous
    wrapped = bytes(row.key)
    try:
        return AESGCM(kek).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], _KEK_WRAP + row.data_subject.encode())
    except InvalidTag:
        raise ImproperlyConfigured(f"the key of data subject {row.data_subject} does not unwrap with the KEK") from None


def subject_key(data_subject: str) -> bytes | None:
    """The unwrapped 32-byte key of a data subject (None if erased or unknown). For InfoSec tooling and tests."""
    row = DataSubjectKey.objects.filter(data_subject=data_subject).first()
    if row is None or row.key is None:
        return None
    return _unwrap(_kek(), row)


@dataclass(frozen=True)
class _Keys:
    enc: bytes
    commit: bytes


def _derive(key: bytes) -> _Keys:
    return _Keys(enc=_hkdf(key, _ENC_INFO), commit=_hkdf(key, _COMMIT_INFO))


# --- the reference object and its commitment -----------------------------------------------------------


def commitment(key: bytes, ref: str, value: Any) -> str:
    """hex HMAC-SHA256(HKDF(key, "ledger-pii-v1|commit"), "ledger-pii-v1|" || ref || "|" || JCS(value))."""
    return _commit(_derive(key).commit, ref, canonical_json(value).encode())


def _commit(commit_key: bytes, ref: str, plaintext: bytes) -> str:
    return hmac.new(commit_key, DOMAIN + ref.encode("ascii") + b"|" + plaintext, hashlib.sha256).hexdigest()


def _aad(ref: str, data_subject: str) -> bytes:
    return DOMAIN + ref.encode("ascii") + b"|" + data_subject.encode()


def is_reference(value: object) -> bool:
    """Whether ``value`` is a personal-data reference object ``{"pii": ref, "commitment": hex}``."""
    return (
        isinstance(value, dict)
        and set(value) == {"pii", "commitment"}
        and isinstance(value["pii"], str)
        and isinstance(value["commitment"], str)
    )


def _ref(commit_key: bytes, idempotency_key: str | None, field: str) -> str:
    if idempotency_key is None:
        return uuid.uuid4().hex
    # A repeated idempotent event must produce the same body, so its refs are derived, not random.
    message = _REF_INFO + idempotency_key.encode() + b"|" + field.encode()
    return hmac.new(commit_key, message, hashlib.sha256).hexdigest()[:32]


# --- sealing, called by record() -------------------------------------------------------------------------


@dataclass(frozen=True)
class PiiPlan:
    """The personal fields of one validated event and whose they are. Built before anything is written."""

    data_subject: str
    payload: dict[str, Any]
    fields: tuple[str, ...]


def check_data_subject(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 300 or any(ord(c) < 0x20 for c in value):
        raise LedgerError("data_subject must be a non-empty string of at most 300 characters, e.g. 'user:42'")
    kind, sep, ident = value.partition(":")
    if not (kind and sep and ident) or len(kind) > 100:
        raise LedgerError("data_subject must look like '<type>:<id>' (type at most 100 characters), e.g. 'user:42'")
    return value


def plan(
    event_type: EventType, payload: dict[str, Any], *, data_subject: str | None, subject: Subject
) -> PiiPlan | None:
    """The personal data of a validated payload, or None if it has none. Raises LedgerError, writes nothing."""
    fields = tuple(f for f in event_type.pii_fields if payload.get(f) is not None)
    if not fields:
        return None
    if data_subject is None:
        if subject.type != "user":
            raise LedgerError(
                f"{event_type.name} carries personal data ({', '.join(fields)}): pass data_subject "
                "(e.g. 'user:42') to say whose it is"
            )
        data_subject = f"user:{subject.id}"
    return PiiPlan(check_data_subject(data_subject), payload, fields)


def _keys_for(subjects: Sequence[str]) -> dict[str, tuple[DataSubjectKey, bytes]]:
    """Each data subject's key row (locked) and raw key, creating the missing ones."""
    kek = _kek()
    wanted = sorted(set(subjects))
    # Lock the rows: an erasure running now must not destroy a key we are about to use.
    rows = {
        r.data_subject: r
        for r in data_subject_keys_lock(wanted)
    }
    erased = [ds for ds in wanted if ds in rows and rows[ds].key is None]
    if erased:  # refused before anything is written
        raise DataSubjectErased(
            f"data subject {erased[0]} was erased; their personal data cannot be recorded or read again"
        )
    out: dict[str, tuple[DataSubjectKey, bytes]] = {}
    for ds in wanted:
        row = rows.get(ds)
        if row is None:
            key = os.urandom(32)
            try:
                with transaction.atomic():
                    row = DataSubjectKey.objects.create(data_subject=ds, key=_wrap(kek, ds, key), kek_id=kek_id(kek))
            except IntegrityError:  # a concurrent writer created it first
                row = data_subject_key_lock(ds, no_key=True)
                assert row is not None  # it exists: creating it collided
                key = _unwrap(kek, row)
        else:
            key = _unwrap(kek, row)
        out[ds] = (row, key)
    return out


def seal(prepared: Sequence[tuple[PendingEntry, PiiPlan | None]]) -> list[list[PiiValue]]:
    """Replace each planned event's personal values by reference objects; return the encrypted values.

    Sets ``payload_json`` of the pending rows in place. The returned ``PiiValue`` rows
    (unsaved, one list per event) must be inserted with their pending rows.
    """
    keys = _keys_for([p.data_subject for _, p in prepared if p is not None])
    out: list[list[PiiValue]] = []
    for pending, pii_plan in prepared:
        values: list[PiiValue] = []
        if pii_plan is not None:
            row, key = keys[pii_plan.data_subject]
            derived = _derive(key)
            sealed = dict(pii_plan.payload)
            for field in pii_plan.fields:
                ref = _ref(derived.commit, pending.idempotency_key, field)
                plaintext = canonical_json(sealed[field]).encode()
                sealed[field] = {"commitment": _commit(derived.commit, ref, plaintext), "pii": ref}
                nonce = os.urandom(_NONCE)
                ciphertext = AESGCM(derived.enc).encrypt(nonce, plaintext, _aad(ref, pii_plan.data_subject))
                values.append(PiiValue(ref=ref, subject_key=row, nonce=nonce, ciphertext=ciphertext))
            pending.payload_json = canonical_json(sealed)
        out.append(values)
    return out


# --- reading ---------------------------------------------------------------------------------------------


def _payload_of(entry: Entry | PendingEntry) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(entry.payload_json)
    return value


def _pii_fields(event_type: str) -> tuple[str, ...]:
    return registry.get(event_type).pii_fields if event_type in registry else ()


def redacted_payload(entry: Entry | PendingEntry) -> dict[str, Any]:
    """The payload as everyone but a revealing InfoSec reader sees it: personal values are "[redacted]"."""
    payload = _payload_of(entry)
    fields = _pii_fields(entry.event_type)
    for key, value in payload.items():
        if (key in fields and value is not None) or is_reference(value):
            payload[key] = REDACTED
    return payload


def has_personal_data(entry: Entry | PendingEntry) -> bool:
    payload = _payload_of(entry)
    return any(is_reference(payload.get(f)) for f in _pii_fields(entry.event_type))


def can_reveal(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """Only active members of InfoSec may reveal personal data (being a superuser is not enough)."""
    return may(user, Action.REVEAL_PERSONAL_DATA)


def _text(value: object, label: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PiiError(f"a {label} is required")
    value = value.strip()
    if len(value) > _MAX_REASON:
        raise PiiError(f"the {label} is longer than {_MAX_REASON} characters")
    return value


def _subject_of(data_subject: str) -> Subject:
    kind, _, ident = data_subject.partition(":")
    return Subject(kind, ident)


def reveal(*, actor: AbstractBaseUser, seq: int, reason: str) -> dict[str, Any]:
    """The payload of entry ``seq`` with its personal values decrypted. InfoSec only; audited.

    The reveal is recorded (``privacy.pii_revealed``) in the same transaction that reads
    the values. A refusal raises ``PiiAccessDenied`` after counting the denial
    (``audit.signals.reveal_refused``, counted by access): the first refusal of a person in an interval writes
    ``access.check_denied``, the repeats (any entry) only a counter, summarised as
    ``access.check_denials_summarised`` when the interval closes. Best effort: an enclosing
    transaction that rolls back takes it back too. Values of an erased data subject come back as "[erased]".
    When the access domain asks for a recent second factor (``audit.policy.step_up_refusal``) and the
    request has none, ``audit.errors.StepUpRequired`` is raised and nothing is read or written.
    """
    reason = _text(reason, "reason")
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise PiiError("seq must be an integer")
    if not can_reveal(actor):
        _record_denied(actor, seq)
        raise PiiAccessDenied("only InfoSec may reveal personal data in the ledger")
    # A recent second factor (the access domain's rule: docs/identity.md), before anything is read or written.
    refusal = step_up_refusal(actor, "revealing personal data")
    if refusal is not None:
        raise StepUpRequired(refusal)
    return _reveal(actor=actor, seq=seq, reason=reason)


# Refused reveals are counted per person over the whole ledger (not per entry): polling, or walking
# the ledger entry by entry, costs one access.check_denied per interval and one summary with the count.
REVEAL_WINDOW_RESOURCE = "ledger:personal_data"


def _record_denied(user: AbstractBaseUser, seq: int) -> None:
    # Counted by the access domain (access/ledger_hooks.py): access.check_denied per person and interval.
    reveal_refused.send(sender=reveal, user=user, seq=seq)


@transaction.atomic
def _reveal(*, actor: AbstractBaseUser, seq: int, reason: str) -> dict[str, Any]:
    entry = Entry.objects.filter(seq=seq).first()
    if entry is None:
        raise PiiError(f"there is no ledger entry #{seq}")
    payload = entry.payload
    refs = {f: payload[f]["pii"] for f in _pii_fields(entry.event_type) if is_reference(payload.get(f))}
    if not refs:
        raise PiiError(f"ledger entry #{seq} holds no personal data")
    stored = {v.ref: v for v in PiiValue.objects.select_related("subject_key").filter(ref__in=refs.values())}
    subjects = sorted({v.subject_key.data_subject for v in stored.values()})
    if len(subjects) > 1:
        raise PiiError(f"ledger entry #{seq} refers to values of several data subjects")
    data_subject = subjects[0] if subjects else "unknown:unknown"
    kek = _kek()
    for field, ref in refs.items():
        value = stored.get(ref)
        if value is None:
            payload[field] = MISSING
            continue
        if value.subject_key.key is None or value.ciphertext is None or value.nonce is None:
            payload[field] = ERASED
            continue
        derived = _derive(_unwrap(kek, value.subject_key))
        aad = _aad(ref, data_subject)
        try:
            plaintext = AESGCM(derived.enc).decrypt(bytes(value.nonce), bytes(value.ciphertext), aad)
        except InvalidTag:
            raise PiiError(f"the stored value of '{field}' in entry #{seq} does not decrypt (tampered?)") from None
        if not hmac.compare_digest(_commit(derived.commit, ref, plaintext), payload[field]["commitment"]):
            raise PiiError(f"the stored value of '{field}' in entry #{seq} does not match its commitment")
        payload[field] = json.loads(plaintext)
    record(
        event_type="privacy.pii_revealed",
        actor=Actor.user(actor),
        subject=_subject_of(data_subject),
        payload={"seq": seq, "fields": sorted(refs), "data_subject": data_subject, "reason": reason},
    )
    return payload


# --- KEK rotation ----------------------------------------------------------------------------------------

# One chain for every rotation, so "when was the personal-data KEK rotated" is one subject's history.
KEK_SUBJECT = Subject("ledger", "pii_kek")


def pii_kek_rotate(
    *, actor: Actor, batch_size: int = 500, progress: Callable[[int, int | None], None] | None = None
) -> int:
    """Re-wrap every live key still wrapped with ``LEDGER_PII_KEK_PREVIOUS`` under ``LEDGER_PII_KEK``.

    Returns how many keys this run re-wrapped. The subject keys themselves do not change
    (same 32 bytes, so every ciphertext and commitment stays valid); only their wrapping
    does. Erased rows have no key and are left alone. Each batch is its own transaction
    with its rows locked, so a crash leaves whole batches done and a rerun picks up the
    rest; a run with nothing left re-wraps 0. Records ``privacy.kek_rotated`` (KEK ids and
    counts, never key material). ``progress(done, total)`` is called after each batch.

    Refused (``PiiError``, nothing changed) when the previous KEK is not configured, is the
    current one, or when a live key is wrapped with a KEK that is neither.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise PiiError("batch_size must be a positive integer")
    current = _kek()
    previous = _previous_kek()
    if previous is None:
        raise PiiError(
            "LEDGER_PII_KEK_PREVIOUS is not set: set it to the KEK being retired and LEDGER_PII_KEK to the new one"
        )
    from_id, to_id = kek_id(previous), kek_id(current)
    if hmac.compare_digest(previous, current):
        raise PiiError(f"LEDGER_PII_KEK_PREVIOUS is the same KEK as LEDGER_PII_KEK ({to_id}): nothing to rotate")
    live = DataSubjectKey.objects.filter(erased_at__isnull=True)
    # Checked up front so that a third, unknown KEK stops the run before any row is touched:
    # re-wrapping the others would hide that some keys cannot be unwrapped at all.
    foreign = sorted(set(live.exclude(kek_id__in=(from_id, to_id)).values_list("kek_id", flat=True)))
    if foreign:
        raise PiiError(
            f"some data subject keys are wrapped with KEK {', '.join(foreign[:5])}, which is neither "
            f"LEDGER_PII_KEK ({to_id}) nor LEDGER_PII_KEK_PREVIOUS ({from_id}); nothing was re-wrapped"
        )
    total = live.filter(kek_id=from_id).count()
    if progress is not None:
        progress(0, total)
    done = 0
    while True:
        with transaction.atomic():
            # Rows leave the filter once re-wrapped, so each batch takes the next ones without a cursor.
            rows = data_subject_keys_to_rewrap_lock(from_id, batch_size)
            for row in rows:
                raw = _unwrap(current, row)  # by its kek_id: the previous KEK
                row.key = _wrap(current, row.data_subject, raw)
                row.kek_id = to_id
            if rows:
                DataSubjectKey.objects.bulk_update(rows, ["key", "kek_id"])
            done += len(rows)
            last = len(rows) < batch_size
            if last:
                # Recorded with the last batch rather than in a transaction of its own: the entry then
                # exists exactly when the rotation is complete (a crash after the last re-wrap but before
                # a separate record would leave a finished rotation with no record). A run that crashed
                # midway records nothing for its committed batches; its rerun's entry carries them in
                # ``live_keys`` (every live key is under the new KEK), while ``rewrapped`` counts that run.
                record(
                    event_type="privacy.kek_rotated",
                    actor=actor,
                    subject=KEK_SUBJECT,
                    payload={
                        "from_kek_id": from_id,
                        "to_kek_id": to_id,
                        "rewrapped": done,
                        "live_keys": live.count(),
                    },
                )
        if progress is not None:
            progress(done, max(total, done))
        if last:
            if done:
                logger.info("re-wrapped %d data subject key(s) from KEK %s to KEK %s", done, from_id, to_id)
            return done


# --- erasure ---------------------------------------------------------------------------------------------


def _anonymise_account(data_subject: str) -> bool:
    """Strip the account of data subject ``user:<pk>`` of its name and email and disable it.

    The ledger keeps ``user:<pk>`` in clear as a pseudonymous id; the mapping from it to a person
    lives in ``auth_user``, so erasure must cut it there too. Returns whether an account was changed.
    """
    pk = account_pk(data_subject)
    if pk is None:
        return False
    user = account_lock(pk)
    if user is None:
        return False
    username = f"erased-{user.pk}"
    if User.objects.filter(username=username).exclude(pk=user.pk).exists():
        # Someone registered that name: an erasure must not fail on it, so make it unique.
        username = f"erased-{user.pk}-{uuid.uuid4().hex[:12]}"
    user.username = username
    user.first_name = user.last_name = user.email = ""
    user.set_unusable_password()
    user.is_active = False
    user.save(update_fields=["username", "first_name", "last_name", "email", "password", "is_active"])
    return True




@transaction.atomic
def data_subject_erase(*, actor: Actor, data_subject: str, reason: str) -> int:
    """Destroy a data subject's key and ciphertexts (right to erasure). Returns how many values.

    For ``user:<pk>`` the account is anonymised in the same transaction (username
    ``erased-<pk>``, no names or email, unusable password, inactive).

    The hashed bodies never held the values, so every entry hash, the chains, the
    Merkle tree and the signed checkpoints are unchanged and still verify. Refused
    (``AlreadyErased``) the second time, and (``PiiError``) for an unknown subject.
    """
    try:
        data_subject = check_data_subject(data_subject)
    except LedgerError as exc:
        raise PiiError(str(exc)) from None
    reason = _text(reason, "reason")
    row = data_subject_key_lock(data_subject)
    if row is None:
        raise PiiError(f"no personal data is recorded for data subject {data_subject}")
    if row.erased_at is not None:
        raise AlreadyErased(f"data subject {data_subject} was already erased at {row.erased_at.isoformat()}")
    count = PiiValue.objects.filter(subject_key=row).update(nonce=None, ciphertext=None)
    row.key = None
    row.erased_at = timezone.now()
    row.save(update_fields=["key", "erased_at"])
    anonymised = _anonymise_account(data_subject)
    # What the domains above keep about the person (web: their console preferences) goes in this transaction.
    subject_erased.send(sender=data_subject_erase, data_subject=data_subject)
    record(
        event_type="privacy.subject_erased",
        actor=actor,
        subject=_subject_of(data_subject),
        payload={"data_subject": data_subject, "reason": reason, "values": count, "account_anonymised": anonymised},
    )
    return count


__all__ = [
    "ERASED",
    "REDACTED",
    "AlreadyErased",
    "DataSubjectErased",
    "PiiAccessDenied",
    "PiiError",
    "can_reveal",
    "commitment",
    "data_subject_erase",
    "has_personal_data",
    "is_reference",
    "pii_kek_rotate",
    "redacted_payload",
    "reveal",
    "subject_key",
]


class _Sealing:
    """This module's answer to ``record()`` (``audit.ledger.PersonalData``)."""

    check_data_subject = staticmethod(check_data_subject)
    plan = staticmethod(plan)
    seal = staticmethod(seal)


personal_data_register(_Sealing())
