"""Register (or update) the ledger's webhook in MLflow: ``manage.py mlflow_webhook_register --url URL``.

Uses the MLflow server of ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI`` and the secret
``MLFLOW_WEBHOOK_SECRET`` (the one the endpoint verifies signatures with). Idempotent: running it
twice leaves one webhook (docs/deploy.md "MLflow webhooks").

Exit status: 0 registered; 1 MLflow refused or could not be reached (the message says why; nothing
changed unless it says so); 2 bad usage.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance import registry


class Command(BaseCommand):
    help = ("Register the ledger's webhook in MLflow (model registry events, signed with MLFLOW_WEBHOOK_SECRET); "
            "updates the existing one found by name or URL.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", required=True,
                            help="where MLflow delivers, e.g. http://web:8000/webhooks/mlflow in docker/compose.yml")
        parser.add_argument("--name", default=registry.WEBHOOK_NAME, help="the webhook's name in MLflow")

    def handle(self, *args: Any, **options: Any) -> None:
        from mlflow.exceptions import MlflowException  # heavy: imported on first use

        url = options["url"].strip()
        if not url.startswith(("http://", "https://")) or not url.rstrip("/").endswith("/webhooks/mlflow"):
            raise CommandError("--url must be the http(s) URL of this ledger's /webhooks/mlflow endpoint")
        if settings.MLFLOW_WEBHOOK_SECRET == settings.DEV_MLFLOW_WEBHOOK_SECRET and not settings.DEBUG:
            raise CommandError("MLFLOW_WEBHOOK_SECRET is the dev secret; set the real one")
        try:
            action, webhook_id, deleted = registry.webhook_register(
                url=url, secret=settings.MLFLOW_WEBHOOK_SECRET, name=options["name"])
        except MlflowException as exc:
            raise CommandError(f"MLflow refused: {exc.message}") from None
        except OSError as exc:
            raise CommandError(f"MLflow could not be reached at {settings.MLFLOW_REGISTRY_URI}: {exc}") from None
        self.stdout.write(f"{action} MLflow webhook {webhook_id} ({options['name']}) -> {url} for "
                          f"{', '.join(registry.WEBHOOK_EVENTS)}")
        if deleted:
            self.stdout.write(f"deleted duplicate webhook(s): {', '.join(deleted)}")
