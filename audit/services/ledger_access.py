"""Reading the audit log is itself on the record: ``ledger.accessed`` (PCI DSS v4 10.2.1.3).

One entry per read request (never one per row), written by the view's marker once the answer is known to
be a success (``audit/console/reads.py``, ``audit/api/reads.py``), with:

* who read (the entry's actor: ``user:<id>``, or ``service:<name>`` for an API token), the channel
  (``console`` | ``api``) and the view (its URL name);
* the filter that defined what was read. Filter values that can be personal data (``q``, ``actor``,
  ``subject``: a search for a username, a subject typed by hand) never enter the hashed body: they are the
  PII field ``search``, sealed under the *reader's* data subject key (``audit.pii``, docs/pii.md);
* what the entry covers (``covers``/``window_seconds``): ``request`` (this request only); ``pages``
  (this request and the further pages of the same filter by the same principal on the same view within the
  window: a client paging through a filter is one entry per window, not one per page); ``principal``
  (every request of this view by the principal within the window, whatever its parameters: the proof
  endpoints, which verifiers call at high rates). An entry is never updated once hashed, so it says only what
  is known when it is written: the pages that follow are covered by it, not counted in it.

Coalescing remembers the first request of a window in the Django cache. When the cache is down or has
forgotten (evicted, restarted) the read is recorded again: over-recording is safe, under-recording is not.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils.crypto import salted_hmac

from audit.canonical import canonical_json
from audit.event_types import registry
from audit.ledger import Actor, LedgerError, Subject, record

logger = logging.getLogger(__name__)

EVENT_TYPE = "ledger.accessed"
CHANNELS = ("console", "api", "admin")
REQUEST, PAGES, PRINCIPAL = "request", "pages", "principal"
COVERS = (REQUEST, PAGES, PRINCIPAL)

#: Filter keys whose values can be personal data (free text that may be a username or a name, or a subject id
#: typed by hand). Their values go into the entry's ``search`` field (sealed), never into ``filter``, unless the
#: value is one of the forms a hashed body already carries in the clear (``in_the_clear``).
PERSONAL_FILTERS = frozenset({"q", "actor", "subject"})
_SEQ = re.compile(r"#?\s*\d{1,18}")
_ACCOUNT = re.compile(r"user:\d{1,18}")
_COMPONENT = re.compile(r"(service|system):[A-Za-z0-9._:/-]{1,200}")
_SUBJECT = re.compile(r"([a-z][a-z0-9_]{0,99}):(.{1,300})", re.S)
#: Subject types whose ids are (or may be) about a person: a subject of these types is in the clear only as an
#: account reference (``user:42``). Every other registered subject type names things (models, datasets,
#: exports...) whose ids are in the hashed bodies of their own entries already.
PERSONAL_SUBJECT_TYPES = frozenset({"user", "login", "token"})
MAX_VALUE = 300
MAX_VALUES = 100
_KEY_SALT = "audit.ledger_access.window"
# A dead cache must cost one warning a minute, not one per read.
_WARN_EVERY = 60.0
_last_warning = [0.0]


def in_the_clear(value: str) -> bool:
    """Whether a filter value may enter a hashed body as it is: a seq (``123``, ``#123``), an account reference
    (``user:42``), a service account or component (``service:ci``, ``system:sequencer``), or a subject
    ``type:id`` of a registered subject type that does not name a person. Anything else (a username, a name,
    a subject of an unknown type) may be personal data and is sealed."""
    if _SEQ.fullmatch(value) or _ACCOUNT.fullmatch(value) or _COMPONENT.fullmatch(value):
        return True
    subject = _SUBJECT.fullmatch(value)
    if subject is None or subject.group(1) in PERSONAL_SUBJECT_TYPES:
        return False
    return subject.group(1) in _subject_types() and not any(c < " " for c in value)


def _subject_types() -> frozenset[str]:
    return frozenset(t for e in registry.all() for t in e.subject_types)


def _value(value: Any) -> str | int | list[str]:
    """A filter value as it may enter the payload: a string (capped), an int, or a list of capped strings."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return value
    if isinstance(value, list | tuple):
        return [str(v)[:MAX_VALUE] for v in value[:MAX_VALUES]]
    return str(value)[:MAX_VALUE]


def split_filter(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The filter's plain part and its personal part: the values of ``PERSONAL_FILTERS`` keys that are not
    ``in_the_clear``. Empty values are left out."""
    plain: dict[str, Any] = {}
    personal: dict[str, Any] = {}
    for key, value in values.items():
        if value is None or value == "" or value == [] or value == ():
            continue
        clean = _value(value)
        sealed = key in PERSONAL_FILTERS and not all(
            isinstance(v, str) and in_the_clear(v) for v in (clean if isinstance(clean, list) else [clean]))
        (personal if sealed else plain)[str(key)[:100]] = clean
    return plain, personal


def _window_key(actor: Actor, channel: str, view: str, subject: Subject, covers: str,
                plain: Mapping[str, Any], personal: Mapping[str, Any]) -> str:
    """The cache key of a coalescing window. Keyed (HMAC with SECRET_KEY): the personal part of a filter is in
    it, and a cache must not hold a value anyone can confirm by hashing a guess."""
    scope: dict[str, Any] = {"actor": f"{actor.type}:{actor.id}", "channel": channel, "view": view}
    if covers == PAGES:
        scope |= {"subject": f"{subject.type}:{subject.id}", "filter": dict(plain), "search": dict(personal)}
    return "ledger-access:" + salted_hmac(_KEY_SALT, canonical_json(scope), algorithm="sha256").hexdigest()


def _warn(what: str, exc: Exception) -> None:
    now = time.monotonic()
    if now - _last_warning[0] >= _WARN_EVERY:
        _last_warning[0] = now
        logger.warning("ledger access coalescing: the cache failed to %s (%s); reads are recorded one by one "
                       "until it is back", what, type(exc).__name__)


def _covered(key: str) -> bool:
    try:
        return cache.get(key) is not None
    except Exception as exc:  # any cache failure: record (over-recording is safe)
        _warn("answer", exc)
        return False


def _remember(key: str, window: int) -> None:
    try:
        # add, not set: the window runs from the first recorded read, a later one never extends it.
        cache.add(key, 1, timeout=window)
    except Exception as exc:  # the entry is written; the next page is then recorded too
        _warn("remember a window", exc)


def ledger_access_record(
    *, actor: Actor, reader: str, view: str, channel: str, subject: Subject, filter: Mapping[str, Any],
    covers: str = REQUEST, continuation: bool = False,
) -> bool:
    """Record that ``actor`` read the ledger through ``view``; True when an entry was written, False when an
    open window already covers this read.

    ``reader``: the data subject (``user:<id>``, the service account's user for a token) under whose key the
    personal part of ``filter`` is sealed. ``covers`` says what the entry covers (module docstring);
    ``continuation``: the request carries a page cursor (only then does a ``pages`` window cover it: the
    first page of a filter is always recorded). Raises ``LedgerError`` on bad arguments, before writing.

    One INSERT into the ledger's intake queue (two more with personal filter values: the reader's key, the
    sealed value); no savepoint (``savepoint=False``): the caller is a read, there is nothing of its own to
    keep if this fails, and a failure fails the request (the data is not served unrecorded).
    """
    if channel not in CHANNELS:
        raise LedgerError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
    if covers not in COVERS:
        raise LedgerError(f"covers must be one of {', '.join(COVERS)}, not {covers!r}")
    window = int(settings.LEDGER_ACCESS_WINDOW_SECONDS)
    plain, personal = split_filter(filter)
    key = None if covers == REQUEST else _window_key(actor, channel, view, subject, covers, plain, personal)
    if key is not None and (continuation or covers == PRINCIPAL) and _covered(key):
        return False
    payload: dict[str, Any] = {"view": view, "channel": channel, "filter": plain, "covers": covers,
                               "window_seconds": 0 if covers == REQUEST else window}
    if personal:
        payload["search"] = personal
    with transaction.atomic(savepoint=False):
        record(event_type=EVENT_TYPE, actor=actor, subject=subject, payload=payload,
               data_subject=reader if personal else None)
    # After the write (committed, unless an enclosing transaction holds it): a window is opened only by a read
    # that is on the record.
    if key is not None:
        _remember(key, window)
    return True
