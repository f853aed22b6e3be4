"""The marker every view of the ledger carries: what it reads is recorded (``ledger.accessed``), or why not.

Explicit per view, never guessed from URLs by a middleware: a console view is decorated with
``@ledger_read(LedgerRead(...))`` (innermost, under ``login_required``), an API view mixes in
``audit.api.reads.LedgerReadMixin`` with a ``ledger_read`` class attribute; a view of the ledger's apps that
reads none of its content says why with ``@not_a_ledger_read("...")`` (API: ``ledger_read_exempt = "..."``).
``tests/audit/test_ledger_reads_marked.py`` walks the URL conf and fails on an audit view that has neither,
so a new view cannot be forgotten.

The entry is written after the view has answered and only for a success (2xx): a refused (401/403), missing
(404) or invalid (400) read returned nothing and is not an access. A refusal (403) of someone signed in is an
invalid access attempt (PCI DSS v4 10.2.1.4): announced as ``audit.signals.ledger_read_refused``, which access
counts as ``access.check_denied`` once per person and interval (``access/ledger_hooks.py``). For a streamed
answer (the CSV, an export's file) the entry is written before the first byte leaves. If writing it fails,
the request fails: the data is never served unrecorded.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from django.http import HttpRequest
from django.http.response import HttpResponseBase

from audit import signals
from audit.ledger import Actor, Subject
from audit.services.ledger_access import REQUEST, ledger_access_record

V = TypeVar("V", bound=Callable[..., Any])


@dataclass(frozen=True)
class LedgerRead:
    """What a view reads, for its ``ledger.accessed`` entry.

    ``view``: the URL name. ``subject``: ``(type, id)``; an id of ``"<kwarg>"`` in angle brackets is taken from
    the URL (``("export", "<export_id>")``). ``filter_keys``: the query parameters that define what is read;
    ``path_keys``: the URL arguments that do (``seq``); ``cursor_keys``: those that only page through it
    (their presence makes a request a continuation). ``covers``: ``request`` | ``pages`` | ``principal``
    (``audit.services.ledger_access``)."""

    view: str
    subject: tuple[str, str] = ("ledger", "entries")
    filter_keys: tuple[str, ...] = ()
    path_keys: tuple[str, ...] = ()
    cursor_keys: tuple[str, ...] = ()
    covers: str = REQUEST

    def subject_for(self, kwargs: Mapping[str, Any]) -> Subject:
        kind, ident = self.subject
        if ident.startswith("<") and ident.endswith(">"):
            ident = str(kwargs[ident[1:-1]])
        return Subject(kind, ident)

    def filter_of(self, query: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The filter of one request: the URL arguments in ``path_keys``, then each ``filter_keys`` parameter
        (one value as a string, a repeated one as a list); ``query`` is a ``QueryDict``."""
        values: dict[str, Any] = {k: kwargs[k] for k in self.path_keys if k in kwargs}
        for key in self.filter_keys:
            got = [v.strip() for v in query.getlist(key) if v.strip()]
            if got:
                values[key] = got[0] if len(got) == 1 else got
        return values

    def is_continuation(self, query: Any) -> bool:
        return any((query.get(k) or "").strip() for k in self.cursor_keys)

    def record(self, *, actor: Actor, reader: str, channel: str, query: Any, kwargs: Mapping[str, Any]) -> bool:
        return ledger_access_record(
            actor=actor, reader=reader, view=self.view, channel=channel, subject=self.subject_for(kwargs),
            filter=self.filter_of(query, kwargs), covers=self.covers, continuation=self.is_continuation(query),
        )


def succeeded(response: HttpResponseBase) -> bool:
    return 200 <= response.status_code < 300


def refused(response: HttpResponseBase) -> bool:
    return response.status_code == 403


def announce_refusal(spec: LedgerRead, user: Any, service: str | None) -> None:
    """A signed-in reader was refused (403): an invalid access attempt, counted by access."""
    signals.ledger_read_refused.send(sender=LedgerRead, user=user, view=spec.view, service=service)


def ledger_read(spec: LedgerRead) -> Callable[[V], V]:
    """Record a console view's successful reads as ``ledger.accessed`` (channel ``console``, actor the
    signed-in person). Put it under ``login_required``: it sees the view's own answer, refusals included."""

    def decorate(view: V) -> V:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            response: HttpResponseBase = view(request, *args, **kwargs)
            user = request.user
            if succeeded(response) and user.is_authenticated:
                spec.record(actor=Actor.user(user), reader=f"user:{user.pk}", channel="console",
                            query=request.GET, kwargs=kwargs)
            elif refused(response) and user.is_authenticated:
                announce_refusal(spec, user, None)
            return response

        wrapper.ledger_read = spec  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def not_a_ledger_read(reason: str) -> Callable[[V], V]:
    """Mark a view of the ledger's apps that reads none of the ledger's content (``reason`` says why)."""
    if not reason.strip():
        raise ValueError("say why the view is not a read of the ledger")

    def decorate(view: V) -> V:
        view.ledger_read_exempt = reason  # type: ignore[attr-defined]
        return view

    return decorate
