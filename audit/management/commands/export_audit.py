"""Export the ledger for a regulator or an auditor: a verifiable bundle, a CSV, or a model's audit report."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.errors import StepUpRequired
from audit.export.bundle import verify_command
from audit.export.errors import ExportError
from audit.export.scope import FORMATS, model_exclusions, parse_scope
from audit.export.service import export_create, export_run, summary
from web.logging import progress_bar, progress_wanted


class Command(BaseCommand):
    help = (
        "Export ledger entries to FILE: a zip bundle that verify.py checks offline (default), a CSV, or an HTML "
        "audit report of one model. The export is recorded in the ledger (ledger.exported)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, metavar="FILE", help="where to write the export (must not exist)")
        parser.add_argument("--since", metavar="T", help="entries recorded at or after T (ISO 8601; dates are UTC)")
        parser.add_argument("--until", metavar="T", help="entries recorded at or before T (a date includes the day)")
        parser.add_argument("--subject", action="extend", nargs="+", default=[], metavar="TYPE:ID",
                            help="only these subjects, e.g. model_version:fraud-detector/7 (complete histories)")
        parser.add_argument("--event-type", action="extend", nargs="+", default=[], metavar="T",
                            help="only these event types (a filtered export: completeness is not claimed)")
        parser.add_argument("--model", metavar="NAME",
                            help="a registered model: it, its versions (and their runtime events), their promotion "
                            "requests and its incidents")
        parser.add_argument("--dataset", metavar="NAME", help="a dataset's own history")
        parser.add_argument("--since-checkpoint", metavar="SIZE",
                            help="the tree size of a checkpoint the recipient already holds: the bundle includes "
                            "that checkpoint and the consistency proof from it (bundles only)")
        parser.add_argument("--format", choices=FORMATS, default="bundle",
                            help="bundle (zip), csv, report (html) or pdf (the report as one PDF)")
        parser.add_argument("--actor", metavar="USERNAME",
                            help="who is exporting (an InfoSec member or auditor); recorded in the ledger. "
                            "Without it the export is recorded as by system:export_audit. Refused while "
                            "MFA_REQUIRED is on: a person's export needs a recent second factor, which a "
                            "command cannot carry (export from the console)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar (also off when not a TTY)")

    def handle(self, *args: Any, **options: Any) -> None:
        out = Path(options["out"]).expanduser()
        if out.exists():
            raise CommandError(f"{out} already exists; choose another --out")
        if not out.parent.is_dir():
            raise CommandError(f"the directory {out.parent} does not exist")
        if out.name.startswith("-") or not out.name:
            raise CommandError(f"--out {out} is not a usable file name")
        user = None
        if options["actor"]:
            user = get_user_model().objects.filter(username=options["actor"]).first()
            if user is None:
                raise CommandError(f"--actor: no user named {options['actor']!r}")
        try:
            scope = parse_scope(
                since=options["since"], until=options["until"], subjects=options["subject"],
                event_types=options["event_type"], model=options["model"], dataset=options["dataset"],
                since_checkpoint=options["since_checkpoint"],
            )
            job = export_create(actor=user, scope=scope, fmt=options["format"], enqueue=False)
        except StepUpRequired:
            # MFA_REQUIRED: a person's export needs a recent second factor, which a shell cannot show.
            raise CommandError(
                f"--actor {options['actor']}: exporting for a person needs a recent multi-factor sign-in "
                "(MFA_REQUIRED is on), which a command cannot carry; export from the console "
                "(Exports page) after confirming it is you, or leave out --actor to export as "
                "the operator (recorded as system:export_audit)") from None
        except ExportError as exc:
            if exc.code == "report_needs_model":
                raise CommandError(f"the {options['format']} format is about one model: give --model") from None
            raise CommandError(str(exc)) from None
        show = progress_wanted(self.stdout, options)
        with progress_bar(enabled=show, total=None, desc="exporting") as bar:

            try:
                job = export_run(export_id=job.pk, out=out, progress=bar)
            except ExportError as exc:
                raise CommandError(f"export #{job.pk} failed: {exc}") from None
        self.stdout.write(summary(job))
        if job.format == "bundle":
            self.stdout.write(f"verify it with: unzip -p {shlex.quote(str(out))} verify.py > verify.py && "
                              f"{verify_command(str(out))}")
            self.stdout.write("(the recipient must obtain the --trusted-key and --witness-key values from a channel "
                              "other than the bundle; without them verify.py exits 3 and does not say VERIFIED)")
        excluded = (job.scope or {}).get("model") and job.format == "bundle"
        if excluded:
            for item in model_exclusions(job.scope["model"], int(job.scope["ledger_size"])):
                self.stdout.write(f"not included: {item['entries']:,} {item['what']} ({item['why']})")

