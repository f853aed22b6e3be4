"""The one registry of ledger event types, and the ledger's own types (``ledger.*``, ``privacy.*``).

Every entry's ``event_type`` must be registered here, with the shape of its
payload and the type of its subject. Each domain registers the types it writes
from its own ``events`` module (``access/events.py``, ``governance/events.py``),
imported by its ``AppConfig.ready()``.

Names are stable identifiers (``<domain>.<past_tense_verb>``): once an
entry has been written with a name, renaming it would orphan history, so names
are only ever added. ``record()`` refuses an unknown type or a payload that does
not match.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


class UnknownEventType(ValueError):
    pass


class InvalidPayload(ValueError):
    pass


_MISSING = object()


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
    # Runtime events may be sent by serving/monitoring systems through POST /api/v1/events;
    # every other type is written only by this product's own services.
    runtime: bool = False
    # The entry's subject type(s), " | "-separated (catalogue metadata: docs/event-types.md, event-types.json):
    # what ``record()`` is called with by the services that write the type; "A | B" when it depends on the case.
    # Required: ``Registry.register`` refuses a type without one.
    subject: str = ""

    def validate(self, payload: Mapping[str, Any]) -> None:
        """Raise InvalidPayload naming every problem of ``payload`` (missing, null, wrong type, unknown key).

        Called for every event written (twice for a runtime event: the ingest service's check, then
        ``record()``'s own), so the per-field work is prepared once per type in ``_plan``.
        """
        plan, known = self._plan
        problems: list[str] = []
        for key, required, nullable, allowed, numeric, kind in plan:
            value = payload.get(key, _MISSING)
            if value is _MISSING:
                if required:
                    problems.append(f"'{key}' is required")
            elif value is None:
                if not nullable:
                    problems.append(f"'{key}' must not be null")
            # bool is an int in Python; JSON keeps them apart.
            elif (numeric and isinstance(value, bool)) or not isinstance(value, allowed):
                problems.append(f"'{key}' must be of type {kind}")
        if not self.open_payload and not known.issuperset(payload):
            extra = sorted(set(payload) - known)
            problems.append("unknown field(s): " + ", ".join(repr(k) for k in extra))
        if problems:
            raise InvalidPayload(f"invalid payload for {self.name}: " + "; ".join(problems))

    @cached_property
    def _plan(self) -> tuple[tuple[tuple[str, bool, bool, tuple[type, ...], bool, str], ...], frozenset[str]]:
        checks = tuple((key, spec.required, spec.nullable, _JSON_TYPES[spec.kind], spec.kind in ("int", "number"),
                        spec.kind) for key, spec in self.fields.items())
        return checks, frozenset(self.fields)

    @cached_property  # asked for every event written
    def pii_fields(self) -> tuple[str, ...]:
        return tuple(k for k, f in self.fields.items() if f.pii)

    @property
    def subject_types(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.subject.split("|") if t.strip())


class Registry:
    def __init__(self) -> None:
        self._types: dict[str, EventType] = {}

    def register(self, event_type: EventType) -> EventType:
        if event_type.name in self._types:
            raise ValueError(f"event type {event_type.name} is registered twice")
        parts = event_type.name.split(".")
        if len(parts) != 2 or not all(p and p.replace("_", "").isalnum() and p.islower() for p in parts):
            raise ValueError(f"event type name {event_type.name!r} must look like 'domain.snake_case'")
        if not event_type.subject_types:
            raise ValueError(f"event type {event_type.name} has no subject type (types without one are refused)")
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

    def runtime_names(self) -> list[str]:
        return sorted(n for n, t in self._types.items() if t.runtime)

    def all(self) -> list[EventType]:
        return [self._types[n] for n in self.names()]



registry = Registry()
_r = registry.register
S = Field
OPT = Field(required=False)
_LIST = Field("list")

# --- the ledger itself --------------------------------------------------------------
_r(EventType("ledger.signing_key_registered", "A checkpoint signing key was first used.",
             {"verifier_key": S(), "key_id": S()}, subject="signing_key"))
_r(EventType("ledger.note_added", "An analyst attached a note to a subject's history.",
             {"text": S(), "reference": OPT}, subject="any (the subject the note is attached to)"))
_r(EventType("privacy.pii_revealed", "An authorised reader revealed personal data kept out of the ledger body.",
             {"seq": Field("int"), "fields": _LIST, "data_subject": S(), "reason": S()}, subject="user"))
_r(EventType("privacy.subject_erased", "A data subject's key was destroyed (GDPR Art. 17): their values are gone.",
             {"data_subject": S(), "reason": S(), "values": Field("int"), "account_anonymised": Field("bool")},
             subject="user"))
_r(EventType("privacy.kek_rotated", "Data subject keys were re-wrapped under a new key-encryption key (KEK).",
             {"from_kek_id": S(), "to_kek_id": S(), "rewrapped": Field("int"), "live_keys": Field("int")},
             subject="ledger"))
# PCI DSS v4 10.2.1.3: every read of the audit log (console or API) is itself on the record, one entry per request
# with the filter that defined what was read (audit/services/ledger_access.py, docs/ledger.md "Reading the ledger
# is recorded"). ``search``: the filter values that can be personal data (a search text, an actor or subject
# typed by hand), sealed under the reader's key and so never in the hashed body.
_r(EventType("ledger.accessed", "Someone read the ledger (entries, proofs or an export's file) in the console or "
             "the API; the filter says what.",
             {"view": S(), "channel": S(), "filter": Field("object"), "search": Field("object", required=False,
                                                                                     pii=True),
              "covers": S(), "window_seconds": Field("int")},
             subject="ledger | export"))
_r(EventType("ledger.exported", "The ledger was exported (who, format, scope).", {"export_id": Field("int"), "format": S(), "scope": Field("object")}, subject="export"))  # noqa: E501
_r(EventType("ledger.signing_key_rotated", "The checkpoint signing key was replaced.", {"old_verifier_key": S(), "new_verifier_key": S(), "reason": S()}, subject="ledger"))  # noqa: E501

# The handover checkpoint (tree size H, signed by both keys) ends the old key's validity at H and starts the
# new key's at H (docs/ledger.md, "Key lifetimes"); recorded in the rotation's transaction, right after it.
_r(EventType("ledger.signing_key_handover", "A rotation's handover checkpoint: the old key is valid up to its tree "
             "size, the new key from it.",
             {"old_verifier_key": S(), "new_verifier_key": S(), "tree_size": Field("int"), "root_hash": S()},
             subject="ledger"))

# --- integrity, retention and legal holds (operations) ------------------------------------------------------
_r(EventType("ledger.verified", "A scheduled verification of the ledger completed.",
             {"mode": S(), "from_size": Field("int"), "tree_size": Field("int"), "ok": Field("bool"),
              "reason": Field(nullable=True), "duration_ms": Field("int")}, subject="ledger"))
_r(EventType("privacy.legal_hold_created", "A legal hold now protects a data subject's personal data from erasure.",
             {"hold_id": Field("int"), "data_subject": S(), "reason": S(), "reference": OPT}, subject="user"))
_r(EventType("privacy.legal_hold_released", "A legal hold was released.",
             {"hold_id": Field("int"), "data_subject": S(), "reason": S()}, subject="user"))
_r(EventType("privacy.retention_erased", "Personal data past its retention period was crypto-shredded.",
             {"data_subject": S(), "retention_class": S(), "values": Field("int"), "oldest": S()}, subject="user"))
