"""Write docs/compliance.md from the regulation mapping (audit/compliance.py), or check that it is current."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.compliance import DOC_PATH, mapping_json, markdown


class Command(BaseCommand):
    help = "Write the regulation mapping (docs/compliance.md) from audit/compliance.py; --check only compares."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", metavar="FILE", default=str(DOC_PATH), help="where to write the Markdown")
        parser.add_argument("--json", action="store_true", help="print the mapping as JSON")
        parser.add_argument("--check", action="store_true", help="exit non-zero when FILE is not current")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["json"]:
            self.stdout.write(mapping_json(), ending="")
            return
        path = Path(options["out"])
        text = markdown()
        if options["check"]:
            current = path.read_text(encoding="utf-8") if path.exists() else ""
            if current != text:
                raise CommandError(f"{path} is stale: run python manage.py compliance_map")
            self.stdout.write(f"{path} is current")
            return
        path.write_text(text, encoding="utf-8")
        self.stdout.write(f"wrote {path}")
