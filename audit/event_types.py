"""The one registry of ledger event types.

Every entry's ``event_type`` must be registered here, with the shape of its
payload. Names are stable identifiers (``<domain>.<past_tense_verb>``): once an
entry has been written with a name, renaming it would orphan history, so names
are only ever added. ``record()`` refuses an unknown type or a payload that does
not match.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class UnknownEventType(ValueError):
    pass


class InvalidPayload(ValueError):
    pass


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "number": (int, float),
    "bool": (bool,),
    "object": (dict,),
    "list": (list,),
    "any": (str, int, float, bool, dict, list, type(None)),
}


@dataclass(frozen=True)
class Field:
    kind: str = "str"
    required: bool = True
    nullable: bool = False
    # Personal data: later kept out of the hashed body (crypto-shredding).
    pii: bool = False


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    fields: Mapping[str, Field] = field(default_factory=dict)
    # Runtime events accept extra keys (systems send their own context).
    open_payload: bool = False

    def validate(self, payload: Mapping[str, Any]) -> None:
        problems: list[str] = []
        for key, spec in self.fields.items():
            if key not in payload:
                if spec.required:
                    problems.append(f"'{key}' is required")
                continue
            value = payload[key]
            if value is None:
                if not spec.nullable:
                    problems.append(f"'{key}' must not be null")
                continue
            allowed = _JSON_TYPES[spec.kind]
            # bool is an int in Python; JSON keeps them apart.
            if (isinstance(value, bool) and spec.kind in ("int", "number")) or not isinstance(value, allowed):
                problems.append(f"'{key}' must be of type {spec.kind}")
        if not self.open_payload:
            extra = sorted(set(payload) - set(self.fields))
            if extra:
                problems.append("unknown field(s): " + ", ".join(repr(k) for k in extra))
        if problems:
            raise InvalidPayload(f"invalid payload for {self.name}: " + "; ".join(problems))

    @property
    def pii_fields(self) -> tuple[str, ...]:
        return tuple(k for k, f in self.fields.items() if f.pii)


class Registry:
    def __init__(self) -> None:
        self._types: dict[str, EventType] = {}

    def register(self, event_type: EventType) -> EventType:
        if event_type.name in self._types:
            raise ValueError(f"event type {event_type.name} is registered twice")
        parts = event_type.name.split(".")
        if len(parts) != 2 or not all(p and p.replace("_", "").isalnum() and p.islower() for p in parts):
            raise ValueError(f"event type name {event_type.name!r} must look like 'domain.snake_case'")
        self._types[event_type.name] = event_type
        return event_type

    def get(self, name: str) -> EventType:
        try:
            return self._types[name]
        except KeyError:
            raise UnknownEventType(f"unknown event type {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def names(self) -> list[str]:
        return sorted(self._types)

    def all(self) -> list[EventType]:
        return [self._types[n] for n in self.names()]


registry = Registry()
_r = registry.register
S = Field
OPT = Field(required=False)

# --- the ledger itself --------------------------------------------------------------
_r(EventType("ledger.signing_key_registered", "A checkpoint signing key was first used.",
             {"verifier_key": S(), "key_id": S()}))
_r(EventType("ledger.note_added", "An analyst attached a note to a subject's history.",
             {"text": S(), "reference": OPT}))

# --- users and roles -----------------------------------------------------------------
_r(EventType("auth.role_added", "A user was given a role (group).", {"role": S(), "reason": OPT}))
_r(EventType("auth.role_removed", "A role (group) was taken from a user.", {"role": S(), "reason": OPT}))
