"""Helpers of the API tests (plain functions; fixtures come from the conftest files and plugins)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from audit.models import PendingEntry


def problem_of(response: Any) -> dict[str, Any]:
    """The RFC 9457 body of an error response (asserts the format)."""
    assert response["Content-Type"].startswith("application/problem+json"), response["Content-Type"]
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body), body
    assert body["status"] == response.status_code
    return body


@contextmanager
def writes_no_ledger() -> Iterator[None]:
    """Assert the block queues no ledger entry."""
    before = PendingEntry.objects.count()
    yield
    assert PendingEntry.objects.count() == before
