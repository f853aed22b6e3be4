"""Verify the whole ledger: entry hashes, chain, subject links, checkpoint roots and signatures."""
from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.note import NoteError
from audit.verification import verify_ledger


class Command(BaseCommand):
    help = "Recompute and check the whole ledger. Exit 0 when intact, 1 when not (naming the first bad seq)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
        parser.add_argument(
            "--trusted-key",
            action="append",
            default=[],
            metavar="VKEY",
            help="an extra verifier key (name+id+key) to accept checkpoint signatures from; repeatable",
        )
        parser.add_argument("--quiet", action="store_true", help="no progress output")

    def handle(self, *args: Any, **options: Any) -> None:
        as_json = options["json"]
        show_progress = not as_json and not options["quiet"] and sys.stderr.isatty()

        def progress(done: int) -> None:
            if show_progress:
                sys.stderr.write(f"\rverified {done:,} entries")
                sys.stderr.flush()

        try:
            result = verify_ledger(extra_keys=options["trusted_key"], progress=progress)
        except NoteError as exc:
            raise CommandError(f"a trusted key is malformed: {exc}") from None
        if show_progress:
            sys.stderr.write("\n")
        if as_json:
            self.stdout.write(json.dumps(result.as_dict(), sort_keys=True))
        elif result.ok:
            self.stdout.write(
                self.style.SUCCESS(
                    f"ledger intact: {result.entries:,} entries, {result.checkpoints:,} checkpoints verified, "
                    f"root {result.root_hash} ({result.seconds:.2f}s)"
                )
            )
        else:
            self.stdout.write(
                self.style.ERROR(
                    f"LEDGER NOT INTACT at seq {result.first_bad_seq}: {result.reason}: {result.detail}"
                )
            )
        if not result.ok:
            sys.exit(1)
