"""Run the retention job now: crypto-shred personal data past retention that no legal hold covers."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from audit.models import DataSubjectKey
from audit.services.retention import retention_run
from web.logging import progress_bar, progress_wanted


class Command(BaseCommand):
    help = (
        "Erase (crypto-shred) the personal data of every data subject whose values are all past their "
        "retention class, unless a legal hold covers them. Idempotent. See docs/retention.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="report what would be erased; change nothing")
        parser.add_argument("--limit", type=int, default=10_000, help="at most this many data subjects (default 10000)")
        parser.add_argument("--as-of", metavar="T", help="judge retention as of this ISO 8601 time (dry runs only)")
        parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar (also off when not a TTY)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        now = None
        if options["as_of"]:
            if not options["dry_run"]:
                raise CommandError("--as-of is only allowed with --dry-run (erasure always uses the real time)")
            try:
                now = datetime.fromisoformat(options["as_of"])
            except ValueError:
                raise CommandError(f"--as-of {options['as_of']!r} is not an ISO 8601 time") from None
            if timezone.is_naive(now):
                now = now.replace(tzinfo=UTC)
        show = progress_wanted(self.stdout, options)
        total = DataSubjectKey.objects.filter(erased_at__isnull=True).count() if show else None
        with progress_bar(enabled=show, total=total, desc="retention", unit="subject") as bar:
            report = retention_run(now=now, dry_run=options["dry_run"], limit=options["limit"], progress=bar)
        if options["json"]:
            self.stdout.write(json.dumps({
                "dry_run": report.dry_run, "examined": report.examined, "erased": report.erased,
                "held": report.held, "not_due": report.not_due, "values": report.values,
                "stopped_early": report.stopped_early,
            }, sort_keys=True))
        else:
            self.stdout.write(str(report))
