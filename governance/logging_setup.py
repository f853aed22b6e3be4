"""Structured logs: a JSON formatter, a context filter, a redacting filter and the request log.

Every record that reaches the console handler is first given the request id and
the actor (``user:<id>`` or ``service:<name>``: ids, never usernames or emails) and
then scrubbed of secrets: API tokens (``mlg_…``), bearer credentials, passwords and
other ``key=value`` secrets, URL credentials, private keys, e-mail addresses and
card numbers. Scrubbing works on the rendered message, the extra fields and the
traceback, so a careless ``logger.info("%s", request.POST)`` cannot leak either.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from governance.request_context import current_request_id

REDACTED = "[REDACTED]"

_PATTERNS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
     "[REDACTED PRIVATE KEY]"),
    (re.compile(r"\bmlg_[A-Za-z0-9_\-]{4,}"), "mlg_" + REDACTED),
    (re.compile(r"\b((?i:bearer|basic)|Token)\s+(?!\[REDACTED|mlg_\[REDACTED)[A-Za-z0-9._~+/=\-]+"), r"\1 " + REDACTED),
    # key=value / "key": "value" / key: value for secret-looking keys.
    (re.compile(
        r"""(?ix)
        (["']?\b[\w-]*(?:password|passwd|pwd|secret|token|api[_-]?key|authorization|cookie|sessionid|csrf\w*|kek|
            private[_-]?key|signing[_-]?key)[\w-]*["']?)
        (\s*[:=]\s*)
        (?:"[^"]*"|'[^']*'|\[[^\]]*\]|[^\s,;&}]+)
        """),
     r"\1\2" + '"' + REDACTED + '"'),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s:@]*:[^/\s@]+@"), r"\1" + REDACTED + "@"),
    (re.compile(r"(?i)\b[a-z0-9._%+\-]+@[a-z0-9.\-]+\.[a-z]{2,}\b"), "[EMAIL]"),
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


def redact(text: str) -> str:
    """``text`` with secrets and known personal-data patterns replaced."""
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return _PAN.sub(_pan, text)


_SECRET_KEY = re.compile(
    r"(?i)(password|passwd|pwd|secret|token|api[_-]?key|authorization|cookie|sessionid|csrf|kek|private[_-]?key|"
    r"signing[_-]?key)"
)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) else _redact_value(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


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
