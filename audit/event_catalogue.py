"""The event catalogue, generated from the registry (``audit/event_types.py``).

Two renderings of one structure: ``catalogue()`` (the ``event-types.json`` member of
every export bundle) and ``markdown()`` (``docs/event-types.md``, rewritten by
``python manage.py event_catalogue``; a test fails when the file is stale). Both
are deterministic: types sorted by name, fields in registration order.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from audit.event_types import EventType, registry

FORMAT = "audit-ledger-event-types/1"
DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "event-types.md"

# How each field kind of the registry appears in JSON.
_KINDS = {"str": "string", "int": "integer", "number": "number", "bool": "boolean", "object": "object",
          "list": "array", "any": "any JSON value"}


def _type(et: EventType) -> dict[str, Any]:
    return {
        "name": et.name,
        "description": et.description,
        "subject_types": list(et.subject_types),
        "written_by": "runtime systems (POST /api/v1/events) or services" if et.runtime else "services",
        "open_payload": et.open_payload,
        "fields": [
            {"name": key, "type": _KINDS[f.kind], "required": f.required, "nullable": f.nullable, "personal": f.pii}
            for key, f in et.fields.items()
        ],
    }


def catalogue() -> dict[str, Any]:
    """Every registered event type with its subject type(s), payload fields and which of them are personal."""
    return {
        "format": FORMAT,
        "personal_field_value": {"commitment": "<64 hex>", "pii": "<32 hex>"},
        "event_types": [_type(et) for et in registry.all()],
    }


def catalogue_json() -> bytes:
    return (json.dumps(catalogue(), indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _field_text(f: dict[str, Any]) -> str:
    flags = [f["type"]]
    if not f["required"]:
        flags.append("optional")
    if f["nullable"]:
        flags.append("nullable")
    text = f"`{f['name']}` ({', '.join(flags)})"
    return f"**{text} personal**" if f["personal"] else text


def markdown() -> str:
    """docs/event-types.md."""
    cat = catalogue()
    out = [
        "# Event types",
        "",
        "<!-- Generated from audit/event_types.py by `python manage.py event_catalogue`: do not edit by hand"
        " (tests/audit/export/test_event_catalogue.py fails when this file is stale). -->",
        "",
        "Every ledger entry's `event_type` is one of these (an entry of any other type is refused when it is"
        " written). Names are stable: types are only ever added. The same catalogue is in every export bundle as"
        f" `event-types.json` (format `{FORMAT}`).",
        "",
        "* **subject**: the `subject.type` of the type's entries (`A | B`: depends on the case, see the notes at"
        " the end).",
        "* **payload**: the members of `payload`, with their JSON type; *optional* members may be absent,"
        " *nullable* ones may be `null`. No other member is accepted, except for types marked *open payload*,"
        " whose senders may add their own.",
        "* **personal** members never hold the value: they hold a reference object"
        ' `{"commitment": "<64 hex>", "pii": "<32 hex>"}` (ledger-format.md §7); the value is kept encrypted'
        " outside the ledger and is never in an export.",
        "",
        f"{len(cat['event_types'])} types.",
        "",
        "| event type | subject | payload | meaning |",
        "|---|---|---|---|",
    ]
    for t in cat["event_types"]:
        fields = ", ".join(_field_text(f) for f in t["fields"]) or "(none)"
        if t["open_payload"]:
            fields += "; open payload"
        written = " Sent by runtime systems through `POST /api/v1/events`." if "runtime" in t["written_by"] else ""
        subject = " \\| ".join(f"`{s}`" if " " not in s else s for s in t["subject_types"])
        out.append(f"| `{t['name']}` | {subject} | {fields} | {t['description']}{written} |")
    out += [
        "",
        "## Notes on subjects",
        "",
        "* Runtime events (`deployment.*`, `monitoring.*`, `incident.*`) are about"
        " `model_version:<model>/<version>` when the payload names both `model` and `version`, else"
        " `environment:<environment>` when it names an environment, else `runtime_source:<source>`. Entries"
        " recorded by other means (the demo's incident history) may be about `incident:<incident_id>`.",
        "* Access events are about the resource: `dataset:<name>`, `registered_model:<name>` or"
        " `environment:<name>`; a denied reveal of personal data is about `ledger_entry:<seq>`.",
        "* A violation's entries are about what it is about (a promotion request, a model, a version,"
        " an environment, or the ledger itself for integrity violations).",
        "* People are `user:<account id>`; privacy events name the data subject (`user:<id>`).",
        "",
    ]
    return "\n".join(out)
