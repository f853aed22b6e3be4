"""Request parsers of the API."""
from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from audit.canonical import MAX_DEPTH, CanonicalizationError, check_depth

# The deepest body the API parses: a ledger payload's own bound plus room for the envelopes around
# it (``{"events": [{..., "detail": ...}]}``), so that a payload at the bound still arrives and
# anything deeper is refused by the same rule wherever it sits.
MAX_BODY_DEPTH = MAX_DEPTH + 8


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser; a body nested deeper than ``MAX_BODY_DEPTH`` is a 400, never a 500.

    The decoder gives up with a ``RecursionError`` only near Python's recursion limit (about a
    thousand levels); shallower but still absurd nesting would recurse again in validation and
    canonicalisation, so the bound is checked here, once, on every parsed body.
    """

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        too_deep = f"JSON parse error - the body nests arrays and objects deeper than {MAX_BODY_DEPTH} levels"
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(too_deep) from None
        try:
            check_depth(data, MAX_BODY_DEPTH)
        except CanonicalizationError:
            raise ParseError(too_deep) from None
        return data
