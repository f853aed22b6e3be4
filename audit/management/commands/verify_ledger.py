"""Verify the whole ledger: entry hashes, chain, subject links, checkpoint roots and signatures."""
from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.models import LedgerHead
from audit.note import NoteError
from audit.verification import verify_ledger
from governance.logging_setup import progress_bar, progress_wanted


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
        parser.add_argument("--no-progress", action="store_true", help="no progress bar (also off when not a TTY)")
        parser.add_argument(
            "--record", choices=("full", "incremental"),
            help="run as the scheduled job does: store a VerificationRun, record ledger.verified and raise a "
            "compliance violation on failure (incremental resumes from the last good run)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        as_json = options["json"]
        show = not as_json and not options["quiet"] and progress_wanted(self.stdout, options)
        total = LedgerHead.objects.filter(pk=1).values_list("tree_size", flat=True).first()
        if options["record"]:
            self._record(options["record"], as_json=as_json, show=show, total=total)
            return
        with progress_bar(enabled=show, total=total, desc="verifying") as progress:
            try:
                result = verify_ledger(extra_keys=options["trusted_key"], progress=progress)
            except NoteError as exc:
                raise CommandError(f"a trusted key is malformed: {exc}") from None
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

    def _record(self, mode: str, *, as_json: bool, show: bool, total: int | None) -> None:
        from audit.integrity import verification_run

        with progress_bar(enabled=show, total=total, desc=f"verifying ({mode})") as progress:
            run = verification_run(mode=mode, progress=progress)
        data = {"run": run.pk, "mode": run.mode, "from_size": run.from_size, "tree_size": run.tree_size,
                "ok": run.ok, "reason": run.reason or None, "first_bad_seq": run.first_bad_seq,
                "detail": run.detail or None, "duration_ms": run.duration_ms}
        if as_json:
            self.stdout.write(json.dumps(data, sort_keys=True))
        elif run.ok:
            self.stdout.write(self.style.SUCCESS(
                f"ledger intact ({run.mode} run #{run.pk}): entries [{run.from_size}, {run.tree_size}) verified"))
        else:
            self.stdout.write(self.style.ERROR(
                f"LEDGER NOT INTACT ({run.mode} run #{run.pk}) at seq {run.first_bad_seq}: {run.reason}: {run.detail}"))
        if not run.ok:
            sys.exit(1)
