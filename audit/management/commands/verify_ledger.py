"""Verify the whole ledger: entry hashes, chain, subject links, checkpoint roots, signatures and key
lifetimes, and that it extends the anchors given (witnesses, checkpoints kept by a reader).

Exit status (docs/verifying.md): 0 consistent AND anchored; 1 a failure; 3 consistent but not anchored
(no witness or known checkpoint: the database is only shown consistent with itself).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.models import LedgerHead
from audit.note import NoteError
from audit.services.integrity import verification_run
from audit.services.witnessing import witness_anchors
from audit.verification import Anchor, open_checkpoint, trusted_keys, verify_ledger
from web.logging import progress_bar, progress_wanted

EXIT_FAILED = 1
EXIT_UNANCHORED = 3


class Command(BaseCommand):
    help = (
        "Recompute and check the whole ledger. Exit 0 when intact and anchored (a witness or a known checkpoint), "
        "1 when not intact (naming the first bad seq), 3 when intact but nothing outside the database anchors it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
        parser.add_argument(
            "--trusted-key",
            action="append",
            default=[],
            metavar="'VKEY[ from=N][ until=M]'",
            help="an extra verifier key to accept checkpoint signatures from, with the tree sizes it may sign; "
            "repeatable (added to the configured keys)",
        )
        parser.add_argument(
            "--trusted-keys-file", action="append", default=[], metavar="FILE",
            help="trusted-key lines, one per line ('#' comments); repeatable, added to the configured keys",
        )
        parser.add_argument(
            "--known-checkpoint", action="append", default=[], metavar="FILE",
            help="a signed checkpoint kept outside the database (from a witness, a regulator, an earlier export): "
            "the ledger must extend it; repeatable",
        )
        parser.add_argument(
            "--witnesses", action="store_true",
            help="ask the configured witnesses (LEDGER_WITNESSES) for their latest cosigned checkpoint and require "
            "the ledger to extend each",
        )
        parser.add_argument(
            "--lenient", action="store_true",
            help="forensic reading: a stored payload that is not exactly canonical, duplicate-free JSON is a "
            "warning instead of a failure",
        )
        parser.add_argument(
            "--jobs", type=int, choices=(1, 2), default=1,
            help="2: check the later half of the ledger in a second process (PostgreSQL; the same result, "
            "about twice as fast with two free cores)",
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
        extra = list(options["trusted_key"])
        for path in options["trusted_keys_file"]:
            try:
                extra += Path(path).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"cannot read the trusted-keys file {path}: {exc}") from None
        try:
            keys = trusted_keys(extra)
        except NoteError as exc:
            raise CommandError(f"a trusted key is malformed: {exc}") from None
        anchors, messages = self._anchors(options, keys)
        with progress_bar(enabled=show, total=total, desc="verifying") as progress:
            result = verify_ledger(progress=progress, anchors=anchors, lenient=options["lenient"], trusted=keys,
                                   jobs=options["jobs"])
        result.warnings[:0] = messages
        if as_json:
            self.stdout.write(json.dumps(result.as_dict(), sort_keys=True))
        elif not result.ok:
            self.stdout.write(
                self.style.ERROR(
                    f"LEDGER NOT INTACT at seq {result.first_bad_seq}: {result.reason}: {result.detail}"
                )
            )
        else:
            checked = (f"{result.entries:,} entries, {result.checkpoints:,} checkpoints verified, "
                       f"root {result.root_hash} ({result.seconds:.2f}s)")
            if result.anchored:
                self.stdout.write(self.style.SUCCESS(f"ledger intact and anchored: {checked}"))
                for anchor in result.anchors:
                    self.stdout.write(f"  extends {anchor}")
            else:
                self.stdout.write(self.style.WARNING(
                    f"ledger consistent with itself, NOT ANCHORED: {checked}. Nothing outside the database "
                    "anchors it: someone able to write the database and holding a signing key could have rebuilt "
                    "it consistently (or deleted checkpoints and the tail). Run with --witnesses or "
                    "--known-checkpoint FILE."))
        if not as_json:
            for warning in result.warnings:
                self.stdout.write(f"warning: {warning}")
        if not result.ok:
            sys.exit(EXIT_FAILED)
        if not result.anchored:
            sys.exit(EXIT_UNANCHORED)

    def _anchors(self, options: dict[str, Any], keys: list[Any]) -> tuple[list[Anchor], list[str]]:
        anchors: list[Anchor] = []
        messages: list[str] = []
        for path in options["known_checkpoint"]:
            try:
                note = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"cannot read the known checkpoint {path}: {exc}") from None
            try:
                anchors.append(open_checkpoint(note, keys, f"known checkpoint {path}"))
            except NoteError as exc:
                raise CommandError(f"the known checkpoint {path} does not verify: {exc}") from None
        if options["witnesses"]:
            found, problems = witness_anchors()
            anchors.extend(found)
            messages.extend(problems)
            if not found:
                messages.append("no witness answered with a cosigned checkpoint: the witnesses anchor nothing")
        return anchors, messages

    def _record(self, mode: str, *, as_json: bool, show: bool, total: int | None) -> None:
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
