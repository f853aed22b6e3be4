"""``manage.py changepassword USERNAME``: Django's command, but the password is set through
``user_password_set_by_system`` (validated by AUTH_PASSWORD_VALIDATORS, recorded as ``auth.password_changed``
by ``system:changepassword``, in one transaction). The password is prompted for twice, never an argument."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.management.commands import changepassword
from django.contrib.auth.models import User
from django.core.management.base import CommandError

from access.errors import AccessError
from access.services.authentication import user_password_set_by_system

MAX_TRIES = 3


class Command(changepassword.Command):
    help = "Change a local account's password (recorded in the ledger as auth.password_changed)."

    def handle(self, *args: Any, **options: Any) -> str:
        username = options["username"]
        if not username:
            raise CommandError("name the account: manage.py changepassword USERNAME")
        user = User.objects.using(options["database"]).filter(username=username).first()
        if user is None:
            raise CommandError(f"user '{username}' does not exist")
        self.stdout.write(f"Changing password for user '{user}'")
        for _ in range(MAX_TRIES):
            first = self._get_pass()  # type: ignore[attr-defined]  # Django's prompt (getpass, refuses empty)
            if first != self._get_pass("Password (again): "):  # type: ignore[attr-defined]
                self.stdout.write("Passwords do not match. Please try again.")
                continue
            try:
                user_password_set_by_system(component="changepassword", user=user, new_password=first)
            except AccessError as exc:
                self.stderr.write(str(exc))
                continue
            return f"Password changed successfully for user '{user}'"
        raise CommandError(f"Aborting password change for user '{user}' after {MAX_TRIES} attempts")
