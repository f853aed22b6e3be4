"""The console's one way of showing a time: ``{% load console %}``.

``{{ t|when }}``  → ``<time datetime="2026-12-06T22:54:16Z" title="2026-12-06 22:54:16 UTC">2026-12-06 23:54:16
CET</time>``: the viewer's zone (``web.preferences``), UTC on hover and in the machine-readable attribute.
``{{ t|ago }}``   → the same element reading "3 minutes ago" (or "in 2 days"), for dashboards and recent lists.
``{{ t|when_text }}`` → the plain text, where markup cannot go (an ``<option>``).

Each takes an aware ``datetime``, an ISO 8601 string (the ledger's timestamps; naive means UTC), or a
``date`` (shown as ``YYYY-MM-DD``); nothing (``None``, "") renders as "" so ``|default:"never"`` works.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil

from web.console.base import step_up_url as _step_up_url

register = template.Library()

#: The one format of the console (then the zone's abbreviation).
FORMAT = "%Y-%m-%d %H:%M:%S"
_JUST_NOW = timedelta(seconds=60)


def _moment(value: Any) -> datetime | date | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        return value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return moment.replace(tzinfo=UTC) if timezone.is_naive(moment) else moment


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def local_text(moment: datetime) -> str:
    """``2026-12-06 23:54:16 CET`` in the active (the viewer's) zone."""
    local = timezone.localtime(moment)
    return f"{local:{FORMAT}} {local.tzname()}"


def utc_text(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):{FORMAT}} UTC"


@register.filter
def when(value: Any) -> str:
    moment = _moment(value)
    if moment is None:
        return value if isinstance(value, str) else ""  # autoescaped: an odd stored string shows as it is
    if not isinstance(moment, datetime):
        return format_html('<time datetime="{}">{}</time>', moment.isoformat(), moment.isoformat())
    return format_html('<time datetime="{}" title="{}">{}</time>', _iso(moment), utc_text(moment),
                       local_text(moment))


@register.filter
def when_text(value: Any) -> str:
    moment = _moment(value)
    if moment is None:
        return value if isinstance(value, str) else ""
    return local_text(moment) if isinstance(moment, datetime) else moment.isoformat()


def relative(moment: datetime, now: datetime | None = None) -> str:
    now = now or timezone.now()
    if abs(now - moment) < _JUST_NOW:
        return "just now"
    if moment <= now:
        return f"{timesince(moment, now, depth=1)} ago"
    return f"in {timeuntil(moment, now, depth=1)}"


@register.filter
def ago(value: Any) -> str:
    moment = _moment(value)
    if not isinstance(moment, datetime):
        return when(value)
    # The exact time on hover, in the viewer's zone and in UTC.
    return format_html('<time datetime="{}" title="{} ({})">{}</time>', _iso(moment),
                       local_text(moment), utc_text(moment), relative(moment))


@register.simple_tag
def now_when() -> str:
    """The current time as ``when`` shows it (the preferences page's example)."""
    return when(timezone.now())


@register.filter
def person(ref: Any, names: Any) -> str:
    """``Olga Owner (user:3)`` when ``names`` (``web.console.base.display_names``) knows the reference,
    the reference alone otherwise: the reference stays for auditors, who search the ledger by it."""
    text = str(ref)
    name = str(names.get(text) or "") if isinstance(names, dict) else ""
    if not name:
        return text
    return format_html('{} <span class="muted mono">({})</span>', name, text)


@register.filter
def actor(entry: Any, names: Any) -> str:
    """A ledger entry's actor (a model or a ``values()`` dict) as ``person`` shows it."""
    if isinstance(entry, dict):
        ref = f"{entry.get('actor_type')}:{entry.get('actor_id')}"
    else:
        ref = f"{getattr(entry, 'actor_type', '')}:{getattr(entry, 'actor_id', '')}"
    return person(ref, names)


@register.simple_tag(takes_context=True)
def step_up_url(context: Any) -> str:
    """``{% step_up_url %}``: the "Confirm it's you" link, coming back to this page
    (``web.console.base.step_up_url``)."""
    request = context.get("request")
    return _step_up_url(request.get_full_path() if request is not None else "/console/")
