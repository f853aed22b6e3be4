"""Notifications to people: the ledger into each person's queue, and the queue out as one digest per channel.

``notifications_collect``: one round of the ``notifications`` stream (``integrations.streams``): each entry of
``rules.EVENT_TYPES`` becomes ``Notification`` rows, one per recipient, in one transaction per batch. The stream
delivers at least once; the unique (recipient, source) makes a second copy a no-op. Entries older than
``MAX_AGE`` are passed over (a first start on a long ledger, or a long outage, must not mail history).

``grants_expiring_scan``: the daily scan; one row per grant and recipient (``grant-expiring:<id>``), so a grant
is announced once whatever the number of runs.

``notifications_send``: for each person with a due row, every pending row of theirs is claimed (a lease, so
two workers never send the same rows at once), grouped by the channel their preference names *now*, and sent
as one message per channel; the rows become ``sent`` only after the receiver accepted. A failure keeps them
pending and moves their ``due_at`` out (1, 2, 4… minutes, at most ``NOTIFY_RETRY_MAX_SECONDS``); a crash
mid-send leaves the claim to run out, and the rows leave again (the person may get that message twice, never
zero times).

Preferences are a person's own presentation (like ``web.ConsolePreference``): no ledger entry.
"""
from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q
from django.dispatch import receiver
from django.utils import timezone

from access import selectors as access_selectors
from audit.ledger import account_pk
from audit.models import Entry
from audit.signals import subject_erased
from integrations.models import Notification, NotificationPreference
from integrations.notifications import channels, rules
from integrations.streams import Delivered, stream_deliver

logger = logging.getLogger(__name__)

STREAM = "notifications"
MAX_AGE = timedelta(days=2)
CLAIM = timedelta(minutes=5)


class PreferenceError(ValueError):
    """A refused preference change (nothing was saved)."""


# --- preferences -----------------------------------------------------------------------------------------------

def preference_of(user: User | int) -> NotificationPreference:
    """The person's preference, or the defaults (unsaved) when they never chose."""
    pk = user if isinstance(user, int) else user.pk
    return NotificationPreference.objects.filter(user_id=pk).first() or NotificationPreference(user_id=pk)


def channel_for(pref: NotificationPreference, category: str) -> str:
    chosen = pref.channels.get(category) if isinstance(pref.channels, dict) else None
    return chosen if chosen in rules.CHANNELS else rules.CATEGORIES[category][1]


@transaction.atomic
def preference_update(*, actor: User, user: User, channels: dict[str, str], digest: str,
                      chat_url: str | None = None) -> NotificationPreference:
    """Set ``user``'s notification channels per category, digest frequency and (when given: ``""`` clears it)
    chat webhook URL. Only the person themself may; ``PreferenceError`` for anything unknown (nothing saved).
    Chat for any category needs a chat URL."""
    if actor.pk != user.pk:
        raise PreferenceError("a person changes only their own notification preferences")
    unknown = set(channels) - set(rules.CATEGORIES)
    if unknown:
        raise PreferenceError(f"unknown notification category: {sorted(unknown)[0][:40]!r}")
    for category, channel in channels.items():
        if channel not in rules.CHANNELS:
            raise PreferenceError(f"{category}: the channel must be one of {', '.join(rules.CHANNELS)}")
    if digest not in NotificationPreference.Digest.values:
        raise PreferenceError("the digest must be immediate, hourly or daily")
    pref = preference_of(user)
    if chat_url is not None:
        try:
            pref.chat_url = channels_check(chat_url) if chat_url.strip() else ""
        except ValueError as exc:
            raise PreferenceError(str(exc)) from None
    pref.channels = dict(channels)
    pref.digest = digest
    if not pref.chat_url and any(channel_for(pref, c) == "chat" for c in rules.CATEGORIES):
        raise PreferenceError("chat needs your Slack-compatible incoming-webhook URL")
    pref.save()
    return pref


def channels_check(url: str) -> str:
    return channels.check_chat_url(url)


def mask(url: str) -> str:
    """What the console shows of a saved chat URL: its host and the last 4 characters."""
    if not url:
        return ""
    from urllib.parse import urlsplit
    return f"https://{urlsplit(url).hostname}/…{url[-4:]}"


# --- collection ------------------------------------------------------------------------------------------------

def due_at(pref: NotificationPreference, now: datetime) -> datetime:
    """When a notification queued ``now`` leaves under the person's digest."""
    if pref.digest == NotificationPreference.Digest.HOURLY:
        return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if pref.digest == NotificationPreference.Digest.DAILY:
        at = now.astimezone(UTC).replace(hour=settings.NOTIFY_DAILY_HOUR, minute=0, second=0, microsecond=0)
        return at if at > now else at + timedelta(days=1)
    return now + timedelta(seconds=settings.NOTIFY_COALESCE_SECONDS)


def _queue(planned: rules.Planned, source: str, now: datetime) -> int:
    """Rows for ``planned``'s recipients who have not chosen ``none`` for its category; duplicates ignored."""
    prefs = {p.user_id: p for p in NotificationPreference.objects.filter(user_id__in=planned.recipients)}
    rows = []
    for pk in sorted(planned.recipients):
        pref = prefs.get(pk) or NotificationPreference(user_id=pk)
        if channel_for(pref, planned.category) == "none":
            continue
        rows.append(Notification(recipient_id=pk, source=source, category=planned.category,
                                 text=rules.clean(planned.text), path=planned.path[:300], due_at=due_at(pref, now)))
    before = Notification.objects.filter(source=source).count()
    Notification.objects.bulk_create(rows, ignore_conflicts=True)
    return Notification.objects.filter(source=source).count() - before


def _relevant(after: int, limit: int) -> Sequence[Entry]:
    return list(Entry.objects.filter(seq__gt=after, event_type__in=rules.EVENT_TYPES).order_by("seq")[:limit])


def _deliver(batch: Sequence[Entry]) -> int:
    now = timezone.now()
    with transaction.atomic():
        for entry in batch:
            if now - rules.entry_time(entry) > MAX_AGE:
                continue
            for index, planned in enumerate(rules.plan(entry)):
                if planned.recipients:
                    _queue(planned, f"entry:{entry.seq}" + (f":{index}" if index else ""), now)
    return len(batch)


def notifications_collect(*, batch_size: int = 200) -> Delivered:
    """One round of the ``notifications`` stream (module docstring); raises what a rule raised (nothing queued
    from that batch, the cursor stays, the next run tries again)."""
    return stream_deliver(name=STREAM, deliver=_deliver, batch_size=batch_size, entries=_relevant)


@transaction.atomic
def grants_expiring_scan(*, now: datetime | None = None) -> int:
    """Queue a notification for every grant expiring within 7 days, once per grant (idempotent)."""
    now = now or timezone.now()
    queued = 0
    for grant in access_selectors.grants_expiring(within=rules.GRANT_EXPIRY_WINDOW, now=now):
        planned = rules.plan_grant_expiring(grant)
        if planned.recipients:
            queued += _queue(planned, f"grant-expiring:{grant.pk}", now)
    return queued


# --- sending ---------------------------------------------------------------------------------------------------

def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(60 * 2 ** max(0, attempts - 1), settings.NOTIFY_RETRY_MAX_SECONDS))


def _claimable(now: datetime) -> Q:
    return Q(state=Notification.State.PENDING) & (Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))


def _finish(ids: list[int], token: str, **changes: Any) -> None:
    with transaction.atomic():
        Notification.objects.filter(pk__in=ids, claim_token=token).update(claim_token="", claimed_until=None,
                                                                         **changes)


def _send_one(recipient: User, channel: str, pref: NotificationPreference, rows: list[Notification]) -> None:
    items = [channels.Item(text=r.text, url=settings.CONSOLE_BASE_URL + r.path) for r in rows]
    if channel == "email":
        channels.send_email(recipient.email, items)
    else:
        channels.send_chat(pref.chat_url, items)


def notifications_send_to(*, recipient_id: int, now: datetime | None = None) -> dict[str, int]:
    """Send ``recipient_id``'s pending notifications now, one message per channel (module docstring)."""
    now = now or timezone.now()
    token = secrets.token_hex(16)
    with transaction.atomic():
        Notification.objects.filter(_claimable(now), recipient_id=recipient_id).update(
            claim_token=token, claimed_until=now + CLAIM)
    rows = list(Notification.objects.filter(claim_token=token).order_by("created_at", "pk"))
    counts = {"sent": 0, "dropped": 0, "failed": 0}
    if not rows:
        return counts
    recipient = User.objects.filter(pk=recipient_id).first()
    pref = preference_of(recipient_id)
    by_channel: dict[str, list[Notification]] = defaultdict(list)
    for row in rows:
        by_channel[channel_for(pref, row.category)].append(row)
    for channel, group in by_channel.items():
        ids = [r.pk for r in group]
        unreachable = (recipient is None or not recipient.is_active or channel == "none"
                       or (channel == "email" and not recipient.email) or (channel == "chat" and not pref.chat_url))
        if unreachable:
            _finish(ids, token, state=Notification.State.DROPPED, channel=channel)
            counts["dropped"] += len(ids)
            continue
        assert recipient is not None
        try:
            _send_one(recipient, channel, pref, group)
        except Exception as exc:  # any failure of the receiver: keep the rows, try again later
            attempts = max(r.attempts for r in group) + 1
            reason = f"{type(exc).__name__}: {exc}" if channel == "email" else str(exc)
            logger.warning("notifications for user %s via %s failed (attempt %s): %s", recipient_id, channel,
                           attempts, reason[:200])
            _finish(ids, token, attempts=attempts, last_error=reason[:300], due_at=now + _backoff(attempts))
            counts["failed"] += len(ids)
            continue
        _finish(ids, token, state=Notification.State.SENT, channel=channel, sent_at=timezone.now(), last_error="")
        counts["sent"] += len(ids)
    return counts


def notifications_send(*, now: datetime | None = None) -> dict[str, int]:
    """Send the due digests of everybody (one ``notifications_send_to`` per person with a due row)."""
    now = now or timezone.now()
    totals = {"sent": 0, "dropped": 0, "failed": 0}
    due = (Notification.objects.filter(_claimable(now), due_at__lte=now).values_list("recipient_id", flat=True)
           .distinct().order_by("recipient_id"))
    for recipient_id in list(due):
        for key, value in notifications_send_to(recipient_id=recipient_id, now=now).items():
            totals[key] += value
    return totals


@receiver(subject_erased, dispatch_uid="integrations.notifications.erase_with_the_person")
def erase_with_the_person(sender: Any, data_subject: str, **kwargs: Any) -> None:
    """A person's erasure takes their notification preference (their chat URL) and queue too, in the erasing
    transaction (``audit.signals.subject_erased``)."""
    pk = account_pk(data_subject)
    if pk is not None:
        NotificationPreference.objects.filter(user_id=pk).delete()
        Notification.objects.filter(recipient_id=pk).delete()
