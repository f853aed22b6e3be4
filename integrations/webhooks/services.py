"""Services of webhook subscriptions. Each is InfoSec's alone and writes its ledger entry in its transaction.

Who may act is read from the database (active, in the ``infosec`` group) when the service runs, as
``access.services.roles`` does, so the console, the admin and any later caller inherit the rule. No ledger
entry carries the secret or the full URL (``integrations.events_webhooks``).

A subscription is its own stream ``webhook:<id>`` (``integrations.streams``): created at the ledger's head
(only what is written from now on is sent) unless ``from_seq`` asks for history; ``webhook_subscription_replay``
rewinds it.
"""
from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from access.roles import INFOSEC
from audit.event_types import registry
from audit.ledger import Actor, Subject, record
from audit.selectors import ledger_size
from integrations.models import WebhookSubscription
from integrations.streams import stream_rewind
from integrations.webhooks import targets
from integrations.webhooks.errors import NotPermitted, WebhookError

_REASON_MAX = 2000
_NAME_MAX = 100
_SUBJECT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,99}")
SECRET_BYTES = 32
ALL = "*"


def _authorise(user: User) -> None:
    fresh = User.objects.filter(pk=user.pk, is_active=True).first()
    if fresh is None or not fresh.groups.filter(name=INFOSEC).exists():
        raise NotPermitted("only InfoSec manages webhook subscriptions")


def _text(label: str, value: object, *, required: bool, max_length: int) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise WebhookError(f"the {label} must be text")
    value = value.strip()
    if required and not value:
        raise WebhookError(f"the {label} is required")
    if len(value) > max_length or any(ord(c) < 0x20 and c not in "\n\t" for c in value):
        raise WebhookError(f"the {label} must be at most {max_length} characters without control characters")
    return value


def clean_event_types(value: object) -> list[str]:
    """The event-type filter: registered names, ``<domain>.*`` prefixes of registered names, or ``*`` (all).

    A string is split on commas and whitespace. Unknown names are refused (a typo would silently send nothing).
    """
    if isinstance(value, str):
        value = [v for v in re.split(r"[\s,]+", value) if v]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise WebhookError("the event types must be a list of names")
    cleaned: list[str] = []
    names = registry.names()
    for item in value:
        item = item.strip()
        if item == ALL:
            pass
        elif item.endswith(".*"):
            if not any(n.startswith(item[:-1]) for n in names):
                raise WebhookError(f"no registered event type matches {item!r}")
        elif item not in registry:
            raise WebhookError(f"unknown event type {item!r} (see docs/event-types.md)")
        if item not in cleaned:
            cleaned.append(item)
    if not cleaned:
        raise WebhookError("choose at least one event type ('*' for every entry, 'promotion.*' for a domain)")
    return cleaned


def matches(event_types: Iterable[str], subject_type: str, subject_id: str, entry: Any) -> bool:
    """Does the ledger ``entry`` pass a subscription's filters?"""
    if subject_type and entry.subject_type != subject_type:
        return False
    if subject_id and entry.subject_id != subject_id:
        return False
    name = entry.event_type
    return any(t == ALL or t == name or (t.endswith(".*") and name.startswith(t[:-1])) for t in event_types)


def _subject_filter(subject_type: object, subject_id: object) -> tuple[str, str]:
    st = _text("subject type", subject_type, required=False, max_length=100)
    sid = _text("subject id", subject_id, required=False, max_length=300)
    if st and not _SUBJECT_TYPE.fullmatch(st):
        raise WebhookError("the subject type is lower-case letters, digits and _ (e.g. model_version)")
    if sid and not st:
        raise WebhookError("a subject id needs its subject type")
    return st, sid


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _filters(sub: WebhookSubscription) -> dict[str, Any]:
    target = targets.parse(sub.url)
    body: dict[str, Any] = {"name": sub.name, "target": target.origin,
                            "url_sha256": hashlib.sha256(sub.url.encode()).hexdigest(),
                            "event_types": list(sub.event_types)}
    if sub.subject_type:
        body["subject_type"] = sub.subject_type
    if sub.subject_id:
        body["subject_id"] = sub.subject_id
    return body


def _record(event_type: str, actor: Actor, sub: WebhookSubscription, **payload: Any) -> None:
    record(event_type=event_type, actor=actor, subject=Subject("webhook_subscription", str(sub.pk)),
           payload={"subscription_id": sub.pk, **payload})


def _live(subscription: WebhookSubscription) -> WebhookSubscription:
    sub = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
    if sub.status == WebhookSubscription.DELETED:
        raise WebhookError(f"webhook subscription #{sub.pk} was deleted")
    return sub


def _last_seq() -> int:
    return ledger_size() - 1


def _check_from_seq(from_seq: object) -> int:
    if isinstance(from_seq, str) and from_seq.strip().isdigit():
        from_seq = int(from_seq.strip())
    if not isinstance(from_seq, int) or isinstance(from_seq, bool) or from_seq < 0:
        raise WebhookError("the seq to start from must be a whole number, 0 or more")
    size = ledger_size()
    if from_seq > size:
        raise WebhookError(f"seq {from_seq} is beyond the ledger ({size} entries: seq 0 to {size - 1})")
    return from_seq


@transaction.atomic
def webhook_subscription_create(*, actor: User, name: str, url: str, event_types: object,
                                subject_type: str = "", subject_id: str = "",
                                from_seq: int | None = None) -> tuple[WebhookSubscription, str]:
    """Subscribe ``url`` to the entries matching the filters; returns the subscription and its secret (the
    only time it is returned: the console shows it once).

    The stream starts after the ledger's last entry (``from_seq`` None: what is written from now on) or at
    ``from_seq``. The URL is checked and resolved (``integrations.webhooks.targets``) before anything is written.
    """
    _authorise(actor)
    clean_name = _text("name", name, required=True, max_length=_NAME_MAX)
    targets.check(url)
    types = clean_event_types(event_types)
    st, sid = _subject_filter(subject_type, subject_id)
    start = _last_seq() + 1 if from_seq is None else _check_from_seq(from_seq)
    secret = new_secret()
    sub = WebhookSubscription.objects.create(name=clean_name, url=url.strip(), event_types=types, subject_type=st,
                                             subject_id=sid, secret=secret, created_by=actor)
    stream_rewind(name=sub.stream_name, to_seq=start - 1)
    _record("webhook.subscription_created", Actor.user(actor), sub, **_filters(sub), from_seq=start)
    return sub, secret


@transaction.atomic
def webhook_subscription_update(*, actor: User, subscription: WebhookSubscription, name: str, url: str,
                                event_types: object, subject_type: str = "", subject_id: str = "",
                                reason: str = "") -> WebhookSubscription:
    """Change the target or the filters (the stream's position is kept: new filters apply from there on)."""
    _authorise(actor)
    sub = _live(subscription)
    sub.name = _text("name", name, required=True, max_length=_NAME_MAX)
    targets.check(url)
    sub.url = url.strip()
    sub.event_types = clean_event_types(event_types)
    sub.subject_type, sub.subject_id = _subject_filter(subject_type, subject_id)
    why = _text("reason", reason, required=False, max_length=_REASON_MAX)
    sub.save()
    _record("webhook.subscription_updated", Actor.user(actor), sub, **_filters(sub), **({"reason": why} if why else {}))
    return sub


def _set_status(*, actor: User, subscription: WebhookSubscription, status: str, event_type: str,
                reason: str, allowed_from: tuple[str, ...]) -> WebhookSubscription:
    _authorise(actor)
    sub = _live(subscription)
    why = _text("reason", reason, required=False, max_length=_REASON_MAX)
    if sub.status not in allowed_from:
        raise WebhookError(f"webhook subscription #{sub.pk} is {sub.status}")
    sub.status = status
    if status == WebhookSubscription.ACTIVE:
        # A resume tries the waiting entry at once and gives it a fresh retry window.
        sub.failing_since = None
        sub.failures_in_row = 0
        sub.next_attempt_at = None
    sub.save()
    _record(event_type, Actor.user(actor), sub, **({"reason": why} if why else {}))
    return sub


@transaction.atomic
def webhook_subscription_pause(*, actor: User, subscription: WebhookSubscription,
                               reason: str = "") -> WebhookSubscription:
    """Stop sending; the stream keeps its place (nothing is skipped while paused)."""
    return _set_status(actor=actor, subscription=subscription, status=WebhookSubscription.PAUSED,
                       event_type="webhook.subscription_paused", reason=reason,
                       allowed_from=(WebhookSubscription.ACTIVE, WebhookSubscription.FAILING))


@transaction.atomic
def webhook_subscription_resume(*, actor: User, subscription: WebhookSubscription,
                                reason: str = "") -> WebhookSubscription:
    """Send again from where the stream stopped (a failing subscription's waiting entry first)."""
    return _set_status(actor=actor, subscription=subscription, status=WebhookSubscription.ACTIVE,
                       event_type="webhook.subscription_resumed", reason=reason,
                       allowed_from=(WebhookSubscription.PAUSED, WebhookSubscription.FAILING))


@transaction.atomic
def webhook_subscription_delete(*, actor: User, subscription: WebhookSubscription,
                                reason: str = "") -> WebhookSubscription:
    """Stop for good: the row stays (status deleted, secret wiped) so the delivery log remains readable.

    The stream's cursor is kept, not deleted: a delivery that read the subscription just before this commit
    and then claims the stream would otherwise recreate the cursor at -1 and send the whole ledger."""
    _authorise(actor)
    sub = _live(subscription)
    why = _text("reason", reason, required=False, max_length=_REASON_MAX)
    sub.status = WebhookSubscription.DELETED
    sub.secret = ""
    sub.save()
    _record("webhook.subscription_deleted", Actor.user(actor), sub, **({"reason": why} if why else {}))
    return sub


@transaction.atomic
def webhook_subscription_secret_rotate(*, actor: User, subscription: WebhookSubscription,
                                       reason: str = "") -> tuple[WebhookSubscription, str]:
    """A new secret (returned once); deliveries from the next attempt on are signed with it only."""
    _authorise(actor)
    sub = _live(subscription)
    why = _text("reason", reason, required=False, max_length=_REASON_MAX)
    secret = new_secret()
    sub.secret = secret
    sub.save(update_fields=["secret", "updated_at"])
    _record("webhook.secret_rotated", Actor.user(actor), sub, **({"reason": why} if why else {}))
    return sub, secret


@transaction.atomic
def webhook_subscription_replay(*, actor: User, subscription: WebhookSubscription, from_seq: object,
                                reason: str) -> WebhookSubscription:
    """Deliver again every matching entry from ``from_seq`` on (``stream_rewind``), with the same
    ``webhook-id``s as the first time, so a receiver that de-duplicates ignores what it already has.
    A delivery running now loses its lease: its advance is discarded and the replay takes over."""
    _authorise(actor)
    sub = _live(subscription)
    seq = _check_from_seq(from_seq)
    why = _text("reason", reason, required=True, max_length=_REASON_MAX)
    stream_rewind(name=sub.stream_name, to_seq=seq - 1)
    sub.failing_since = None
    sub.failures_in_row = 0
    sub.next_attempt_at = None
    sub.save(update_fields=["failing_since", "failures_in_row", "next_attempt_at", "updated_at"])
    _record("webhook.replay_requested", Actor.user(actor), sub, from_seq=seq, reason=why)
    return sub
