"""Deliver the ledger, in ``seq`` order, at least once, to one outbound consumer at a time.

The write-path contract of every outbound stream (SIEM, webhooks, notifications):

1. **Claim** (one short transaction): the stream's ``StreamCursor`` row gets a fresh lease token valid for
   ``lease_seconds``, unless another worker's lease is still running (then nothing happens: one deliverer per
   stream, so entries leave in order).
2. **Deliver** (no transaction open): the entries after the cursor, oldest first, at most ``batch_size``, are
   given to ``deliver``, which returns how many of them (a prefix) the receiver has taken. It may raise: nothing
   is advanced, the error is kept on the cursor, and the next run starts again from the same entry.
3. **Advance** (one short transaction): the cursor moves past what was taken, only if this worker still holds
   the lease (a worker that stalled past its lease and lost it advances nothing; its batch is delivered again
   by the new holder).

So a crash or a lost lease between delivery and advance makes the receiver see those entries twice, never
zero times, and never out of order within one stream: receivers de-duplicate by ``seq`` (or the entry hash).
Only entries already integrated into the chain (``Entry``, with a ``seq``) are delivered.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.models import Entry
from integrations.models import StreamCursor

Deliver = Callable[[Sequence[Entry]], int]
_ERROR_MAX = 2000


@dataclass(frozen=True)
class Delivered:
    """What one run of ``stream_deliver`` did: entries taken by the receiver, and the cursor after it."""

    count: int
    seq: int
    claimed: bool


def stream_cursor(name: str) -> StreamCursor:
    cursor, _ = StreamCursor.objects.get_or_create(name=name)
    return cursor


def _claim(name: str, lease_seconds: float) -> tuple[str, int] | None:
    stream_cursor(name)
    now = timezone.now()
    token = secrets.token_hex(16)
    claimed = StreamCursor.objects.filter(name=name).filter(
        Q(leased_until__isnull=True) | Q(leased_until__lt=now)
    ).update(lease_token=token, leased_until=now + timedelta(seconds=lease_seconds))
    if not claimed:
        return None
    seq = StreamCursor.objects.values_list("seq", flat=True).get(name=name)
    return token, int(seq)


def _release(name: str, token: str, **changes: object) -> bool:
    with transaction.atomic():
        return bool(StreamCursor.objects.filter(name=name, lease_token=token).update(
            lease_token="", leased_until=None, **changes))


def stream_deliver(*, name: str, deliver: Deliver, batch_size: int = 500, lease_seconds: float = 120.0,
                   entries: Callable[[int, int], Sequence[Entry]] | None = None) -> Delivered:
    """One claim-deliver-advance round of stream ``name`` (see the module docstring for the contract).

    ``entries(after_seq, limit)`` chooses what the stream carries (default: every entry); whatever it skips is
    passed over by the cursor only up to the last entry it returned. Returns how many entries the receiver
    took; ``claimed`` is False when another worker holds the stream.
    """
    claim = _claim(name, lease_seconds)
    if claim is None:
        return Delivered(count=0, seq=stream_cursor(name).seq, claimed=False)
    token, after = claim
    batch = list(entries(after, batch_size) if entries is not None
                 else Entry.objects.filter(seq__gt=after).order_by("seq")[:batch_size])
    if not batch:
        _release(name, token)
        return Delivered(count=0, seq=after, claimed=True)
    try:
        taken = int(deliver(batch))
    except Exception as exc:
        _release(name, token, last_error=f"{type(exc).__name__}: {exc}"[:_ERROR_MAX], last_error_at=timezone.now())
        raise
    taken = max(0, min(taken, len(batch)))
    if taken == 0:
        _release(name, token)
        return Delivered(count=0, seq=after, claimed=True)
    new_seq = batch[taken - 1].seq
    advanced = _release(name, token, seq=new_seq, delivered_total=F("delivered_total") + taken,
                        last_delivered_at=timezone.now(), last_error="")
    return Delivered(count=taken if advanced else 0, seq=new_seq if advanced else after, claimed=advanced)


@transaction.atomic
def stream_rewind(*, name: str, to_seq: int) -> StreamCursor:
    """Move stream ``name`` back (or forward) so that the next delivery starts after ``to_seq`` (-1: the
    beginning): the "replay from seq N" of a webhook subscription or a SIEM sink. The caller's service records
    who asked and why; a running delivery's advance is discarded (its lease is revoked)."""
    if to_seq < -1:
        raise ValueError("a stream can be rewound to seq -1 (the beginning) at the earliest")
    cursor = StreamCursor.objects.select_for_update().get(pk=stream_cursor(name).pk)
    cursor.seq = to_seq
    cursor.lease_token = ""
    cursor.leased_until = None
    cursor.save(update_fields=["seq", "lease_token", "leased_until"])
    return cursor
