"""Write the OCSF mapping section of docs/siem.md from integrations/siem/ocsf.py (or check that it is current)."""
from __future__ import annotations

from audit.management.generated_doc import GeneratedDocCommand
from integrations.siem.catalogue import DOC_PATH, mapping_json, markdown


class Command(GeneratedDocCommand):
    help = "Write the OCSF mapping section of docs/siem.md from integrations/siem/ocsf.py; --check only compares."
    doc_path = DOC_PATH
    command_name = "siem_mapping"
    json_help = "print the mapping as JSON"
    render_markdown = staticmethod(markdown)
    render_json = staticmethod(mapping_json)
