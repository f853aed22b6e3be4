"""The shape of a command that writes a generated Markdown doc (or checks that it is current, or prints JSON).

Subclasses name the doc, how to render it and its JSON; ``--check`` fails with the command to run when the
file on disk differs, so CI catches a doc left behind by a code change.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class GeneratedDocCommand(BaseCommand):
    doc_path: Path
    command_name: str
    json_help: str = "print it as JSON"
    render_markdown: Callable[[], str]
    render_json: Callable[[], str]

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", metavar="FILE", default=str(self.doc_path), help="where to write the Markdown")
        parser.add_argument("--json", action="store_true", help=self.json_help)
        parser.add_argument("--check", action="store_true", help="exit non-zero when FILE is not current")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["json"]:
            self.stdout.write(type(self).render_json(), ending="")
            return
        path = Path(options["out"])
        text = type(self).render_markdown()
        if options["check"]:
            current = path.read_text(encoding="utf-8") if path.exists() else ""
            if current != text:
                raise CommandError(f"{path} is stale: run python manage.py {self.command_name}")
            self.stdout.write(f"{path} is current")
            return
        path.write_text(text, encoding="utf-8")
        self.stdout.write(f"wrote {path}")
