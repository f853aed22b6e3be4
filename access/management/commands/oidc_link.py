"""``manage.py oidc_link <username> [--subject SUB] [--issuer ISS]``: let an existing account sign in through
the provider, as the person ``(issuer, subject)`` there.

Single sign-on never links by email or username on its own (docs/identity.md); moving local accounts to
SSO, or the demo's seeded people, takes this explicit operator step. Recorded as ``auth.identity_linked``
by ``system:oidc_link`` (``access.services.sso.external_identity_link``). The subject defaults to the
username (what many providers, and the test provider, use as ``sub``: check yours), the issuer to
``OIDC_OP_ISSUER``.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from access.errors import ServiceError
from access.services.sso import external_identity_link

COMPONENT = "oidc_link"


class Command(BaseCommand):
    help = "Link an existing account to its person at the OpenID provider (issuer + subject)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="+")
        parser.add_argument("--subject", help="the provider's sub for this person (default: the username); "
                                              "only with one username")
        parser.add_argument("--issuer", help="default: OIDC_OP_ISSUER")

    def handle(self, *args: Any, **options: Any) -> None:
        issuer = options["issuer"] or settings.OIDC_OP_ISSUER
        if not issuer:
            raise CommandError("no issuer: set OIDC_OP_ISSUER or pass --issuer")
        if options["subject"] and len(options["username"]) > 1:
            raise CommandError("--subject goes with one username")
        # Each account on its own (one refusal does not stop the others); any refusal fails the command.
        refused = []
        for username in options["username"]:
            user = User.objects.filter(username=username).first()
            try:
                if user is None:
                    raise ServiceError("no account of that name")
                made = external_identity_link(component=COMPONENT, user=user, issuer=issuer,
                                              subject=options["subject"] or username)
            except ServiceError as exc:
                refused.append(f"{username}: {exc}")
                continue
            self.stdout.write(f"{username}: {'linked' if made else 'already linked'} to {issuer}")
        if refused:
            raise CommandError("; ".join(refused))
