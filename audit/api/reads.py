"""The API's side of the ledger-read marker (``audit/console/reads.py`` explains the rule).

``class LedgerEntriesApi(LedgerReadMixin, APIView)`` with ``ledger_read = LedgerRead(...)``: a successful
(2xx) answer is recorded as ``ledger.accessed`` with channel ``api``; the actor is the token's service account
(``service:<name>``) or the signed-in person (``user:<id>``). Recorded in ``finalize_response``, which DRF
calls for every answer, errors included, so only the status decides (a 403 to someone signed in is announced
as an invalid access attempt: ``audit/console/reads.py``). If the write fails, the answer becomes
that error through DRF's handler (a database outage is a 503): the data is not served unrecorded.
"""
from __future__ import annotations

from typing import Any, ClassVar

from rest_framework.request import Request
from rest_framework.response import Response

from audit.console.reads import LedgerRead, announce_refusal, refused, succeeded
from audit.ledger import Actor
from web.api.auth import token_of


class LedgerReadMixin:
    """Mixed into an ``APIView`` before it. The class sets ``ledger_read``."""

    ledger_read: ClassVar[LedgerRead]

    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Any:
        user = request.user
        if succeeded(response) and user is not None and user.is_authenticated:
            token = token_of(request)
            actor = Actor.service(token.service_account.name) if token is not None else Actor.user(user)
            try:
                self.ledger_read.record(actor=actor, reader=f"user:{user.pk}", channel="api",
                                        query=request.query_params, kwargs=kwargs)
            except Exception as exc:
                response = self.handle_exception(exc)  # type: ignore[attr-defined]  # (APIView's)
        elif refused(response) and user is not None and user.is_authenticated:
            token = token_of(request)
            announce_refusal(self.ledger_read, user, token.service_account.name if token is not None else None)
        return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
