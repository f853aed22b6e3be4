"""Integrate pending entries, sign a checkpoint now and print it."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.services.checkpoints import checkpoint_create


class Command(BaseCommand):
    help = "Integrate whatever is pending, sign a checkpoint now and print it (a C2SP signed note)."

    def handle(self, *args: Any, **options: Any) -> None:
        checkpoint = checkpoint_create()
        assert checkpoint is not None  # only_if_grown is off, so one is always made
        self.stdout.write(checkpoint.note, ending="")
