"""Structured logs: a JSON formatter, a context filter, a redacting filter and the request log.

Every record that reaches the console handler is first given the request id and
the actor (``user:<id>`` or ``service:<name>``: ids, never usernames or emails) and
then scrubbed of secrets: API tokens (``mlg_…``), bearer credentials, passwords and
other ``key=value`` secrets, URL credentials, private keys, e-mail addresses and
card numbers. Scrubbing works on the rendered message, the extra fields and the
traceback, so a careless ``logger.info("%s", request.POST)`` cannot leak either.

Extra fields that are not plain JSON values are rendered to text and scrubbed too; an
``HttpRequest`` (Django passes one with every 4xx/5xx) becomes ``"METHOD route"`` (or
the path), never its query string. Scrubbing costs time linear in the text and the text
is bounded: anything longer than ``MAX_REDACT_CHARS`` (16 KiB) keeps its head and tail
around a ``[TRUNCATED n characters]`` marker, so a hostile path cannot burn the CPU.
"""
from __future__ import annotations

import datetime
import logging
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from audit.context import current_request_id

REDACTED = "[REDACTED]"

#: Longest text the patterns ever see. Longer text keeps its head and tail around a marker, so a
#: hostile 1 MiB path or header costs what a 16 KiB one does (the patterns are linear; the cap
#: bounds the constant).
MAX_REDACT_CHARS = 16 * 1024
_TAIL_CHARS = MAX_REDACT_CHARS // 4
# A cut moves this far at most to the nearest separator, so that it does not leave half an e-mail
# address or token (which no pattern would recognise any more) next to the marker.
_SNAP_CHARS = 256
_SEPARATOR = re.compile(r"[\s/?&;,]")

_KEY_WORDS = (r"password|passwd|pwd|secret|token|api[_-]?key|authorization|cookie|sessionid|csrf|kek|"
                 r"private[_-]?key|signing[_-]?key")
_SECRET_KEY = re.compile(f"(?i)({_KEY_WORDS})")

# Every pattern is linear in the length of its input. A run of key, scheme or address characters
# may only START where the run starts (the look-behinds), and possessive quantifiers never give
# back what they took, so the engine does not re-scan a run from each of its positions (the
# quadratic 'a-a-a-…' of issue 9a). An unclosed quote or bracket runs to the end of the text
# instead of being retried from every later key.
_KEY_VALUE = re.compile(
    rf"""(?ix)
    (?<![\w-])(["']?+)                   # a key starts where a run of key characters starts,
    (?=[\w-]*?(?:{_KEY_WORDS}))        # holds a secret-looking word
    ([\w-]++)\1                           # and is taken whole
    (\s*+[:=]\s*+)
    (?:"[^"]*+(?:"|\Z)|'[^']*+(?:'|\Z)|\[[^\]]*+(?:\]|\Z)|[^\s,;&}}]++)
    """
)


_PATTERNS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S),
     "[REDACTED PRIVATE KEY]"),
    (re.compile(r"\bmlg_[A-Za-z0-9_\-]{4,}"), "mlg_" + REDACTED),
    (re.compile(r"\b((?i:bearer|basic)|Token)\s+(?!\[REDACTED|mlg_\[REDACTED)[A-Za-z0-9._~+/=\-]+"), r"\1 " + REDACTED),
    # key=value / "key": "value" / key: value for secret-looking keys.
    (_KEY_VALUE, r'\1\2\1\3"' + REDACTED + '"'),
    (re.compile(r"(?i)(?<![a-z0-9+.\-])([a-z][a-z0-9+.\-]*://)[^/\s:@]*:[^/\s@]+@"), r"\1" + REDACTED + "@"),
    # '%40' is a URL-encoded '@' (query strings in request lines).
    (re.compile(r"(?i)(?<![a-z0-9._%+\-])[a-z0-9._%+\-]+(?:@|%40)[a-z0-9.\-]+\.[a-z]{2,}\b"), "[EMAIL]"),
]
_PAN = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _pan(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "[CARD]" if 13 <= len(digits) <= 19 and _luhn(digits) else match.group(0)


def _bounded(text: str) -> str:
    """``text``, or its head and tail around a ``[TRUNCATED …]`` marker when longer than ``MAX_REDACT_CHARS``."""
    if len(text) <= MAX_REDACT_CHARS:
        return text
    head_end = MAX_REDACT_CHARS - _TAIL_CHARS
    tail_start = len(text) - _TAIL_CHARS
    # Cut at a separator when there is one close by; else drop the snap distance so that the piece of
    # a long token next to the marker is what is lost.
    cut = max((m.start() for m in _SEPARATOR.finditer(text, head_end - _SNAP_CHARS, head_end)), default=None)
    head_end = cut if cut is not None else head_end - _SNAP_CHARS
    after = _SEPARATOR.search(text, tail_start, tail_start + _SNAP_CHARS)
    tail_start = after.start() if after is not None else tail_start + _SNAP_CHARS
    return f"{text[:head_end]} [TRUNCATED {tail_start - head_end} characters] {text[tail_start:]}"


def redact(text: str) -> str:
    """``text`` with secrets and known personal-data patterns replaced.

    Text longer than ``MAX_REDACT_CHARS`` is first cut to about that size (head and tail kept, a
    ``[TRUNCATED n characters]`` marker between them): the cost is bounded whatever the input.
    """
    text = _bounded(text)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return _PAN.sub(_pan, text)


# Values the JSON formatter renders faithfully without calling their __str__.
_PLAIN = (int, float, bool, type(None), datetime.date, datetime.time, datetime.timedelta)
_MAX_DEPTH = 6
_MAX_ITEMS = 200


def _request_summary(request: HttpRequest) -> str:
    """``METHOD route`` (or the path; never the query string, which carries e-mails and tokens)."""
    where = route_of(request) if getattr(request, "resolver_match", None) is not None else redact(request.path)
    return f"{request.method} {where}"


def _redact_value(value: Any, depth: int = 0) -> Any:
    """``value`` fit for the log: strings redacted, containers walked (to a bounded depth and size),
    anything else rendered to a redacted string (an object's ``str()`` may hold a query or a secret)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, HttpRequest):
        return _request_summary(value)
    if isinstance(value, socket.socket):  # runserver's 'django.server' passes one: its str() holds both IPs
        return "<socket>"
    if depth >= _MAX_DEPTH:
        return "[TRUNCATED]"
    if isinstance(value, dict):
        items = list(value.items())
        out: dict[str, Any] = {}
        for key, item in items[:_MAX_ITEMS]:
            name = key if isinstance(key, str) else str(key)
            out[redact(name)] = REDACTED if _SECRET_KEY.search(name) else _redact_value(item, depth + 1)
        if len(items) > _MAX_ITEMS:
            out["[TRUNCATED]"] = f"{len(items) - _MAX_ITEMS} more items"
        return out
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        rendered = [_redact_value(v, depth + 1) for v in items[:_MAX_ITEMS]]
        if len(items) > _MAX_ITEMS:
            rendered.append(f"[TRUNCATED {len(items) - _MAX_ITEMS} more items]")
        return rendered
    try:
        text = str(value)
    except Exception:  # a broken __str__ must not lose the record
        text = f"<unprintable {type(value).__name__}>"
    return redact(text)


# The attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "request_id", "actor"}


class RedactingFilter(logging.Filter):
    """Replaces secrets and PII in the message, the extra fields and the traceback of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken %-format must not lose the record
            message = f"{record.msg!s} {record.args!r}"
        record.msg = redact(message)
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
            # Formatters re-render exc_info when present; leave them only the redacted text.
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD:
                setattr(record, key, _redact_value(value))
        return True


# --- Celery's per-tick lines --------------------------------------------------------------------------------

#: Celery's loggers that write one INFO line per periodic task run: beat's "Sending due task", the
#: worker's "Task ... received" and "Task ... succeeded", and "Discarding revoked task" for a tick that expired
#: unrun (superseded by the next one: after a worker outage, one line per missed second).
_TICK_LOGGERS = {"celery.beat", "celery.worker.strategy", "celery.app.trace", "celery.worker.request"}
#: Tasks scheduled more often than this are "per tick": their routine lines go to DEBUG.
TICK_SECONDS = 60.0


def _frequent_tasks() -> frozenset[str]:
    from datetime import timedelta

    from django.conf import settings

    names = set()
    for entry in getattr(settings, "CELERY_BEAT_SCHEDULE", {}).values():
        schedule = entry.get("schedule")
        seconds = schedule.total_seconds() if isinstance(schedule, timedelta) else (
            float(schedule) if isinstance(schedule, int | float) else None)
        if seconds is not None and seconds < TICK_SECONDS:
            names.add(str(entry.get("task")))
    return frozenset(names)


class PeriodicTaskNoiseFilter(logging.Filter):
    """Demotes Celery's routine INFO lines about tasks beat runs more often than once a minute to DEBUG.

    The sequencer runs every second: at INFO, beat and the worker would write three lines a second
    that say nothing. Failures, retries and every other task keep their level. A demoted record is
    dropped unless its logger is enabled for DEBUG. It must run before ``RedactingFilter`` (which
    renders the arguments this reads the task name from).
    """

    def __init__(self) -> None:
        super().__init__()
        self._tasks: frozenset[str] | None = None

    def _task_name(self, record: logging.LogRecord) -> str | None:
        args = record.args
        if isinstance(args, dict):
            name = args.get("name")
            return name if isinstance(name, str) else None
        if isinstance(args, tuple) and len(args) >= 2:
            # beat: 'Scheduler: Sending due task %s (%s)', entry name, task name;
            # worker.request: 'Discarding revoked task: %s[%s]', task name, id
            name = args[0] if record.name == "celery.worker.request" else args[1]
            return name if isinstance(name, str) else None
        return None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or record.name not in _TICK_LOGGERS:
            return True
        if self._tasks is None:
            self._tasks = _frequent_tasks()
        if self._task_name(record) not in self._tasks:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_current_request: ContextVar[HttpRequest | None] = ContextVar("log_request", default=None)


def actor_of(request: HttpRequest, *, resolve: bool = True) -> str | None:
    """``service:<name>`` for an API token, ``user:<id>`` for a signed-in person, None for anonymous.

    With ``resolve=False`` it never loads a user the request has not loaded yet (no query).
    """
    auth = request.__dict__.get("auth")  # DRF copies its authenticator's result onto the HttpRequest
    account = getattr(auth, "service_account", None)
    if account is not None:
        return f"service:{account.name}"
    user = request.__dict__.get("user")
    if user is None:
        return None
    if not resolve and isinstance(user, SimpleLazyObject) and user._wrapped is empty:
        return None
    if getattr(user, "is_authenticated", False):
        return f"user:{user.pk}"
    return None


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``actor`` (ids only) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        if not hasattr(record, "actor"):
            request = _current_request.get()
            record.actor = actor_of(request, resolve=False) if request is not None else None
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: time, level, logger, message, request id, actor and any extra fields."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("timestamp", True)
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        super().__init__("%(levelname)s %(name)s %(message)s %(request_id)s %(actor)s", *args, **kwargs)


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s %(actor)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        for attr in ("request_id", "actor"):
            if getattr(record, attr, None) is None:
                setattr(record, attr, "-")
        return super().format(record)


request_logger = logging.getLogger("governance.requests")


def route_of(request: HttpRequest) -> str:
    """The URL route name (never the raw path, which carries ids and would explode cardinality)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "<unmatched>"
    return match.view_name or match.route or "<unnamed>"


class RequestLogMiddleware:
    """One log line per request: method, route, status, duration, request id, actor."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _current_request.set(request)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        finally:
            _current_request.reset(token)
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        route = route_of(request)
        if route not in _QUIET_ROUTES:
            status = response.status_code
            request_logger.log(
                logging.WARNING if status >= 500 else logging.INFO,
                "%s %s %s %.1fms", request.method, route, status, duration_ms,
                extra={"method": request.method, "route": route, "status": status, "duration_ms": duration_ms,
                       "actor": actor_of(request, resolve=False)},
            )
        return response


# Probes hit these every few seconds; logging them would drown the rest.
_QUIET_ROUTES = {"ops-healthz", "ops-readyz", "ops-metrics"}


# --- progress bars of management commands ---------------------------------------------------------------


class Progress:
    """``progress(done[, total])`` moves the bar to ``done`` (``total`` when known). A no-op when off."""

    def __init__(self, bar: Any = None) -> None:
        self._bar = bar

    def __call__(self, done: int, total: int | None = None) -> None:
        self.set_total(total)
        if self._bar is not None and done > self._bar.n:
            self._bar.update(done - self._bar.n)

    def set_total(self, total: int | None) -> None:
        if self._bar is not None and total is not None and self._bar.total != total:
            self._bar.total = total
            self._bar.refresh()


@contextmanager
def progress_bar(*, enabled: bool, total: int | None, desc: str, unit: str = "entry") -> Iterator[Progress]:
    """A tqdm bar on stderr when ``enabled``, else a no-op ``Progress``.

    Commands enable it when stdout is a terminal and ``--no-progress`` is absent, so
    pipes, cron mail and tests never get control characters.
    """
    if not enabled:
        yield Progress()
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=True, dynamic_ncols=True, leave=False)
    try:
        yield Progress(bar)
    finally:
        bar.close()


def progress_wanted(stdout: Any, options: dict[str, Any]) -> bool:
    isatty = getattr(stdout, "isatty", None)
    return bool(not options.get("no_progress") and options.get("verbosity", 1) > 0 and callable(isatty) and isatty())
