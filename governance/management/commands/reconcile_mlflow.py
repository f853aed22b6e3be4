"""Reconcile the MLflow registry mirror now (what the beat schedule does every MLFLOW_RECONCILE_INTERVAL)."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance import registry
from governance.services import registry_mirror
from web.logging import progress_bar, progress_wanted


class Command(BaseCommand):
    help = (
        "Mirror registered models and versions from MLflow, complete interrupted deployments and "
        "detect (and, where policy says so, revert) out-of-band alias changes. Prints the report."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", help="reconcile only this registered model")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar (also off when not a TTY)")

    def handle(self, *args: Any, **options: Any) -> None:
        show = progress_wanted(self.stdout, options)
        try:
            if options["model"]:
                report = registry_mirror.registered_model_sync(options["model"])
            else:
                with progress_bar(enabled=show, total=None, desc="reconciling", unit="model") as bar:
                    report = registry_mirror.registry_reconcile(progress=bar)
        except registry.REGISTRY_ERRORS as exc:
            raise CommandError(f"MLflow registry error: {type(exc).__name__}: {exc}") from None
        self.stdout.write(str(report))
        if report.errors:
            self.stdout.write(self.style.WARNING(f"{len(report.errors)} model(s) could not be reconciled"))
        else:
            self.stdout.write(self.style.SUCCESS("reconciled"))
