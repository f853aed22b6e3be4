"""Erase a data subject's personal data from the ledger by destroying their key (crypto-shredding)."""
from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from access.roles import INFOSEC
from audit.ledger import Actor
from audit.pii import PiiError, data_subject_erase


class Command(BaseCommand):
    help = (
        "Destroy a data subject's key so their personal data in the ledger can never be read again. "
        "Entry hashes, chains and checkpoints are unchanged. The actor must be an active InfoSec user."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--subject", required=True, help="the data subject, e.g. user:42")
        parser.add_argument("--reason", required=True, help="why (recorded in the ledger), e.g. a ticket reference")
        parser.add_argument("--actor", required=True, help="username of the InfoSec user carrying out the erasure")

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        actor = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: options["actor"]}).first()
        if actor is None or not actor.is_active:
            raise CommandError("--actor must name an active user")
        if not actor.groups.filter(name=INFOSEC).exists():
            raise CommandError("--actor must be a member of InfoSec")
        try:
            count = data_subject_erase(
                actor=Actor.user(actor), data_subject=options["subject"], reason=options["reason"]
            )
        except PiiError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(f"erased {options['subject']}: key destroyed, {count} value(s) now unrecoverable")
        )
