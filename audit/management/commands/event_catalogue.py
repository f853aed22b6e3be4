"""Write docs/event-types.md from the event registry (or check that it is current)."""
from __future__ import annotations

from audit.event_catalogue import DOC_PATH, catalogue_json, markdown
from audit.management.generated_doc import GeneratedDocCommand


def _catalogue_text() -> str:
    return catalogue_json().decode()


class Command(GeneratedDocCommand):
    help = "Write the event catalogue (docs/event-types.md) from audit/event_types.py; --check only compares."
    doc_path = DOC_PATH
    command_name = "event_catalogue"
    json_help = "print the catalogue as JSON (event-types.json)"
    render_markdown = staticmethod(markdown)
    render_json = staticmethod(_catalogue_text)
