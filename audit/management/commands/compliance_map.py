"""Write docs/compliance.md from the regulation mapping (audit/compliance.py), or check that it is current."""
from __future__ import annotations

from audit.compliance import DOC_PATH, mapping_json, markdown
from audit.management.generated_doc import GeneratedDocCommand


class Command(GeneratedDocCommand):
    help = "Write the regulation mapping (docs/compliance.md) from audit/compliance.py; --check only compares."
    doc_path = DOC_PATH
    command_name = "compliance_map"
    json_help = "print the mapping as JSON"
    render_markdown = staticmethod(markdown)
    render_json = staticmethod(mapping_json)
