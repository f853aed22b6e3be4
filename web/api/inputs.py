"""Input serializers that refuse what they do not understand.

An unknown key is an error, not something silently dropped: a client that misspells
``canary_steps`` must learn it, rather than get a full rollout it did not ask for.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers


class StrictInput(serializers.Serializer):
    """A ``Serializer`` whose input must be a JSON object with only the declared fields."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({"non_field_errors": ["expected a JSON object"]})
        extra = sorted(set(data) - set(self.fields))
        if extra:
            raise serializers.ValidationError({key: ["unknown field"] for key in extra})
        return super().to_internal_value(data)


class Text(serializers.CharField):
    """A string, and only a string: ``5`` or ``true`` is a type error, not text (DRF would coerce them)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class Int(serializers.IntegerField):
    """A JSON integer, and only that: ``"7"``, ``7.0`` and ``true`` are type errors."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


def parse(serializer_class: type[StrictInput], data: Any) -> dict[str, Any]:
    """Validate ``data`` (raising a 400 with field errors) and return the validated fields."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class StrictQuery(serializers.Serializer):
    """Query-string filters: unknown parameters are refused (paging parameters aside)."""

    allowed_extra = frozenset({"page", "page_size", "format"})
    unknown_message = "unknown query parameter"

    def to_internal_value(self, data: Any) -> Any:
        extra = sorted(set(data) - set(self.fields) - self.allowed_extra)
        if extra:
            raise serializers.ValidationError({key: [self.unknown_message] for key in extra})
        return super().to_internal_value({k: self._value(data, k) for k in data if k in self.fields})

    def _value(self, data: Any, key: str) -> Any:
        """A repeatable parameter (a ``ListField``) keeps every value given; any other its last one."""
        if isinstance(self.fields[key], serializers.ListField) and hasattr(data, "getlist"):
            return data.getlist(key)
        return data.get(key)


def parse_query(serializer_class: type[StrictQuery], params: Any) -> dict[str, Any]:
    serializer = serializer_class(data=params)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
