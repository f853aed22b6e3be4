"""Close a person's account (docs/access.md, "Closing an account"): it can no longer sign in, and the
retention clock of its personal data starts.

Exit status: 0 closed; 1 refused (no such account, not InfoSec, one's own account, a service
account's user, already closed, bad reason; nothing written); 2 bad usage (argparse).
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from access.errors import AccessError
from access.services.accounts import user_account_close, user_account_close_by_system
from access.services.checks import principal_label


class Command(BaseCommand):
    help = (
        "Close the account --user-id with a --reason (recorded in the ledger as auth.account_closed, "
        "the account as user:<id>). With --actor the InfoSec member closing it is recorded and the "
        "service's rules apply (InfoSec only, never one's own account); without it the closure is "
        "recorded as system:close_account."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user-id", type=int, required=True, help="the id of the account to close")
        parser.add_argument("--reason", required=True, help="why (a ticket, say); recorded in the ledger")
        parser.add_argument("--actor", metavar="USERNAME", help="the InfoSec member closing it (recorded)")

    def handle(self, *args: Any, **options: Any) -> None:
        account = User.objects.filter(pk=options["user_id"]).first()
        if account is None:
            raise CommandError(f"--user-id: no account with id {options['user_id']}")
        try:
            if options["actor"]:
                actor = User.objects.filter(username=options["actor"]).first()
                if actor is None:
                    raise CommandError(f"--actor: no user named {options['actor']!r}")
                user_account_close(actor=actor, account=account, reason=options["reason"])
            else:
                user_account_close_by_system(component="close_account", account=account, reason=options["reason"])
        except AccessError as exc:
            raise CommandError(f"refused: {exc}") from None
        self.stdout.write(f"closed the account {principal_label(account)}")
