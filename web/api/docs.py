"""OpenAPI helpers of every domain's API: paged envelopes and the problem responses.

The problem document's component (``Problem``, ``ProblemOut``) is declared here once, so the
schema holds a single definition of it; ``answers`` adds it for each error status.
"""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from web.api.problems import CONTENT_TYPE as PROBLEM_MEDIA


class _FieldError(serializers.Serializer):
    field = serializers.CharField()
    message = serializers.CharField()

    class Meta:
        ref_name = "ProblemFieldError"


class ProblemOut(serializers.Serializer):
    """RFC 9457 problem details (``application/problem+json``), the body of every error."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField()
    errors = _FieldError(many=True, required=False)
    request_id = serializers.CharField(required=False)

    class Meta:
        ref_name = "Problem"


LIST_PROBLEMS = (400, 401, 403, 429)
READ_PROBLEMS = (400, 401, 403, 404, 429)
WRITE_PROBLEMS = (400, 401, 403, 404, 409, 415, 429)


def answers(ok: dict[Any, Any], problems: tuple[int, ...] = WRITE_PROBLEMS) -> dict[Any, Any]:
    """``extend_schema(responses=...)``: the success bodies and a problem document per error status.

    A success is keyed by its status (a JSON body) or by ``(status, media type)`` for another body.
    """
    out: dict[Any, Any] = {k if isinstance(k, tuple) else (k, "application/json"): body for k, body in ok.items()}
    out.update({(code, PROBLEM_MEDIA): ProblemOut for code in problems})
    return out


def page(item: serializers.Serializer, name: str) -> serializers.Serializer:
    """The schema of a page of ``item`` in ``StandardPagination``'s envelope."""
    return inline_serializer(name=name, fields={
        "count": serializers.IntegerField(),
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        "results": item,
    })

