"""Dependency outages: a 503 the client can retry, never a 500 that reads as a bug.

A request that fails because the cache, the database or the broker cannot be reached gets a ``503``
problem of type ``unavailable`` that names the dependency's *class* (``cache``, ``database``,
``broker``; never a host, a port or a driver message) with ``Retry-After: RETRY_AFTER_SECONDS``:

* API views: ``web.api.problems.exception_handler`` (DRF's handler);
* console and plain Django views: ``DependencyOutageMiddleware.process_exception``;
* anything raised before a view runs (the session or the signed-in user loaded by a middleware):
  ``web.api.problems.server_error`` looks at the exception being handled.

A dropped database connection (the server is fine, our connection is not: ``pg_terminate_backend``,
a restarted pooler, an idle timeout) is retried once for idempotent reads (GET, HEAD, OPTIONS)
on a fresh connection, by ``DependencyOutageMiddleware``; an unsafe method never is (it may have
been applied before the drop: the client retries it with its ``Idempotency-Key``).

What counts as an outage is deliberately narrow (``dependency_of``): a deadlock, a statement
timeout or a constraint violation is not one and still goes where it went before.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

CACHE = "cache"
DATABASE = "database"
BROKER = "broker"

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_DETAILS = {
    CACHE: "the cache is unavailable; retry after the time in Retry-After",
    DATABASE: "the database is unavailable; retry after the time in Retry-After",
    BROKER: "the task broker is unavailable; retry after the time in Retry-After",
}


class DependencyUnavailable(Exception):
    """A dependency the request needs cannot be reached; raised before anything is written.

    ``dependency`` is the class (``cache``, ``database``, ``broker``), the only thing a client is told."""

    def __init__(self, dependency: str, message: str = "") -> None:
        super().__init__(message or f"{dependency} unavailable")
        self.dependency = dependency


def _cache_errors() -> tuple[type[BaseException], ...]:
    try:
        from redis import exceptions as redis_exceptions
    except ImportError:  # pragma: no cover - redis is a dependency (celery[redis]); no Redis cache without it
        return ()
    return (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError)


#: What Django's Redis cache backend raises when Redis cannot be reached (redis-py's own classes).
CACHE_ERRORS: tuple[type[BaseException], ...] = _cache_errors()


def _broker_errors() -> tuple[type[BaseException], ...]:
    from kombu.exceptions import OperationalError as KombuOperationalError

    return (KombuOperationalError,)


#: What ``task.delay()`` raises when the broker cannot be reached (after kombu's publish retries).
BROKER_ERRORS: tuple[type[BaseException], ...] = _broker_errors()


def db_connection_lost(exc: BaseException) -> bool:
    """The default connection is gone (never opened, closed by the server, or used after closing).

    Told from the connection's state, not from the message: an ``OperationalError`` on a connection
    that is still open (a deadlock, a statement timeout, SQLite's "database is locked") is not one."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    raw = connection.connection
    if raw is None:  # the connection could not be opened at all
        return True
    closed = getattr(raw, "closed", False)  # psycopg 3: True once the server dropped it (libpq status BAD)
    return bool(closed)


def db_connection_dropped(exc: BaseException) -> bool:
    """An established connection died under us (retrying on a fresh one may well succeed), as opposed
    to a database that cannot be connected to at all."""
    return db_connection_lost(exc) and connection.connection is not None


def dependency_of(exc: BaseException) -> str | None:
    """The class of dependency whose outage ``exc`` is, or None when it is not an outage."""
    if isinstance(exc, DependencyUnavailable):
        return exc.dependency
    if CACHE_ERRORS and isinstance(exc, CACHE_ERRORS):
        return CACHE
    if isinstance(exc, BROKER_ERRORS):
        return BROKER
    if db_connection_lost(exc):
        return DATABASE
    return None


def retry_after() -> str:
    return str(int(settings.RETRY_AFTER_SECONDS))


def detail_for(dependency: str) -> str:
    return _DETAILS.get(dependency, "a dependency is unavailable; retry after the time in Retry-After")


class OncePerInterval:
    """A log line at most once per ``interval`` seconds per key (an outage hits every request)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def due(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                return False
            self._last[key] = now
            return True


_outage_log = OncePerInterval(60.0)


def outage_seen(dependency: str, exc: BaseException) -> None:
    """What every 503 of an outage does besides answering: one warning per dependency per minute, with
    the exception's class (not its message: it may carry a host name), so an outage neither floods
    the logs nor goes unseen; and a dead database connection closed (outside a transaction), so the
    next request opens a new one rather than failing on it too."""
    if dependency == DATABASE and not connection.in_atomic_block:
        connection.close()
    if _outage_log.due(dependency):
        logger.warning("%s unavailable: requests get 503 (%s.%s)", dependency, type(exc).__module__,
                       type(exc).__name__, extra={"dependency": dependency})


def unavailable_response(request: HttpRequest, dependency: str) -> HttpResponse:
    """A 503 naming the dependency class: a problem document under /api/, a plain page elsewhere."""
    if request.path.startswith("/api/"):
        from web.api.problems import CONTENT_TYPE, problem

        body = problem(503, detail_for(dependency), code="unavailable")
        body["dependency"] = dependency
        response: HttpResponse = JsonResponse(body, status=503, content_type=CONTENT_TYPE)
    else:
        response = HttpResponse(
            f"<!doctype html><title>Service unavailable</title><h1>Service unavailable</h1>"
            f"<p>The {dependency} is unavailable. Try again in a moment.</p>",
            status=503, content_type="text/html; charset=utf-8",
        )
    response["Retry-After"] = retry_after()
    response["Cache-Control"] = "no-store"
    mark_logged(response)
    return response


def mark_logged(response: HttpResponse) -> None:
    """Keep Django from logging each outage response as an error (``outage_seen`` logs once a minute;
    the request log still has a line per request)."""
    response._has_been_logged = True  # type: ignore[attr-defined]


_RETRIED = "_outage_db_retried"


def read_retry_pending(request: HttpRequest, exc: BaseException) -> bool:
    """This request may still be retried once on a fresh connection (see ``DependencyOutageMiddleware``).

    DRF's exception handler asks, so that it lets the error through to the middleware instead of
    answering 503 at once."""
    return (
        (request.method or "GET").upper() in SAFE_METHODS
        and not getattr(request, _RETRIED, False)
        and not connection.in_atomic_block
        and db_connection_dropped(exc)
    )


class DependencyOutageMiddleware:
    """Outages raised by a view become a 503 (``unavailable``); an idempotent read whose database
    connection was dropped is run once more on a fresh connection first.

    Keep it last in ``MIDDLEWARE``: ``process_exception`` runs innermost first, so it sees the
    view's exception before anything else turns it into a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        exc: BaseException = exception
        if read_retry_pending(request, exc):
            setattr(request, _RETRIED, True)
            logger.info("database connection dropped during a %s; retrying once on a new connection",
                        request.method)
            connection.close()  # a broken connection; the view's first query opens a new one
            match = request.resolver_match
            if match is not None:
                try:
                    response: HttpResponse = match.func(request, *match.args, **match.kwargs)
                    return response
                except Exception as again:
                    exc = again
        dependency = dependency_of(exc)
        if dependency is None:
            if exc is not exception:
                raise exc  # the retry failed otherwise: report that failure, not the dropped connection
            return None
        outage_seen(dependency, exc)
        return unavailable_response(request, dependency)


# --- the broker: checked before a service commits a change whose follow-up task must be queued ----------


def broker_address() -> tuple[str, int] | None:
    """Host and port of the first broker URL, or None when there is no broker (tasks run eagerly)
    or the URL names no TCP address (memory://)."""
    from celery import current_app
    from kombu import Connection

    if current_app.conf.task_always_eager:
        return None
    url = current_app.conf.broker_url
    if not url or url.startswith("memory://"):
        return None
    conn = Connection(url)
    try:
        host = conn.hostname
        port = conn.port or conn.transport.default_port
    finally:
        conn.release()
    if not host or not port:
        return None
    return str(host), int(port)


def require_broker(timeout: float | None = None) -> None:
    """Raise ``DependencyUnavailable("broker")`` when the broker does not accept a TCP connection.

    Called by the receivers that queue a task *after* their service commits (``transaction.on_commit``)
    while the service's transaction is still open: an unreachable broker then rolls the change back
    (503, nothing written) instead of committing a change whose follow-up cannot be queued. A broker
    that dies between this check and the publish is still possible: the change then committed with a
    mark that its follow-up is owed, and the beat's sweep queues it again (``web.follow_ups``;
    docs/api.md, "Retrying")."""
    address = broker_address()
    if address is None:
        return
    limit = timeout if timeout is not None else float(getattr(settings, "READY_BROKER_TIMEOUT", 1.0))
    try:
        with socket.create_connection(address, timeout=limit):
            pass
    except OSError as exc:
        raise DependencyUnavailable(BROKER, "the broker does not accept connections") from exc
