"""Re-wrap the personal-data keys under a new key-encryption key (docs/pii.md, "KEK rotation")."""
from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from access.roles import INFOSEC, has_role
from audit.ledger import Actor
from audit.models import DataSubjectKey
from audit.pii import PiiError, kek_ids, pii_kek_rotate
from web.logging import progress_bar, progress_wanted


class Command(BaseCommand):
    help = (
        "Re-wrap every live data subject key still wrapped with LEDGER_PII_KEK_PREVIOUS under LEDGER_PII_KEK, "
        "in batches (resumable, idempotent), and record privacy.kek_rotated. Set both settings first; remove "
        "LEDGER_PII_KEK_PREVIOUS once this has run. Prints KEK ids only, never key material."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500, help="keys per transaction (default 500)")
        parser.add_argument("--actor", metavar="USERNAME", help="the InfoSec member doing it (recorded)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar (also off when not a TTY)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        actor = Actor.system("rotate_pii_kek")
        if options["actor"]:
            user = get_user_model().objects.filter(username=options["actor"]).first()
            if user is None or not user.is_active:
                raise CommandError(f"--actor: no active user named {options['actor']!r}")
            if not has_role(user, INFOSEC):
                raise CommandError(f"--actor: {options['actor']} is not an InfoSec member")
            actor = Actor.user(user)
        show = progress_wanted(self.stdout, options)
        try:
            with progress_bar(enabled=show, total=None, desc="re-wrapping", unit="key") as bar:
                count = pii_kek_rotate(actor=actor, batch_size=options["batch_size"], progress=bar)
            # Public ids only (an HMAC of each KEK): never a KEK or a subject key.
            current, previous = kek_ids()
        except (PiiError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from None
        live = DataSubjectKey.objects.filter(erased_at__isnull=True).count()
        self.stdout.write(self.style.SUCCESS(
            f"re-wrapped {count} data subject key(s) from KEK {previous} to KEK {current}; "
            f"all {live} live key(s) are under KEK {current}: LEDGER_PII_KEK_PREVIOUS can be removed"
        ))
