"""Print the verifier keys (signed-note format) that checkpoints verify against."""
from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.verification import trusted_verifiers


class Command(BaseCommand):
    help = "Print the current signing key's verifier key and the trusted earlier keys, one per line."

    def handle(self, *args: Any, **options: Any) -> None:
        for verifier in trusted_verifiers():
            self.stdout.write(str(verifier))
