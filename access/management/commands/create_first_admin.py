"""Create the first InfoSec account of a new install (docs/deploy.md "First administrator").

The password comes from a prompt (asked twice, not echoed) or from ``--password-file PATH``
(``-`` for standard input): never from the command line, where ``ps`` and shell history would
keep it. Recorded in the ledger as ``auth.user_registered`` and ``auth.role_added`` by
``system:create_first_admin`` (the account as ``user:<id>``; no personal data in the hashed body).

Exit status: 0 created; 1 refused (an InfoSec member or a superuser already exists, the username is
taken, the password is not acceptable, the prompts differ; nothing written); 2 bad usage (argparse).
"""
from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from access.errors import AccessError, ServiceError
from access.services.roles import first_admin_create


class Command(BaseCommand):
    help = (
        "Create the first InfoSec account (refused once any InfoSec member or superuser exists). The password "
        "is prompted for, or read from --password-file (never given on the command line)."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # No abbreviations: "--password SECRET" must be an error, not "--password-file SECRET".
        return super().create_parser(prog_name, subcommand, allow_abbrev=False, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument("--email", default="")
        parser.add_argument("--full-name", default="")
        parser.add_argument("--password-file", metavar="PATH",
                            help="read the password from this file's first line ('-': standard input)")

    def _password(self, path: str | None) -> str:
        if path == "-":
            return sys.stdin.readline().rstrip("\r\n")
        if path:
            try:
                lines = Path(path).read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                # Not the path itself: a password given there by mistake would be echoed.
                raise CommandError(f"--password-file: cannot read the file ({exc.strerror})") from None
            return lines[0] if lines else ""
        if not sys.stdin.isatty():
            raise CommandError("no terminal to prompt for the password: give --password-file PATH (or - for stdin)")
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("the passwords differ; nothing was created")
        return first

    def handle(self, *args: Any, **options: Any) -> None:
        password = self._password(options["password_file"])
        try:
            user = first_admin_create(username=options["username"], email=options["email"],
                                      full_name=options["full_name"], password=password)
        except (AccessError, ServiceError) as exc:
            raise CommandError(f"refused: {exc}") from None
        self.stdout.write(f"created the first administrator user:{user.pk} with the infosec role")
