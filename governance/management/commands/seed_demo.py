"""Load demo users and data (idempotent; refused when DEBUG is off)."""
from __future__ import annotations

import os
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from access import roles
from access.services.roles import user_register, user_role_add_by_system
from audit.context import Authentication, authentication_bound
from audit.ledger import Actor, Subject, record
from audit.models import Entry, PendingEntry
from audit.services.checkpoints import checkpoint_create
from governance.management.demo import seed_story
from governance.models import RegisteredModel

DEMO_PASSWORD = "governance-demo"  # noqa: S105 - printed for the demo on purpose
DEMO_USERS: list[tuple[str, str, tuple[str, ...]]] = [
    ("alice", "Alice Ng (InfoSec analyst)", (roles.INFOSEC,)),
    ("arthur", "Arthur Bell (internal auditor)", (roles.AUDITOR,)),
    ("omar", "Omar Haddad (model owner, fraud models)", (roles.MODEL_OWNER,)),
    ("priya", "Priya Raman (model-risk approver)", (roles.APPROVER,)),
    ("sam", "Sam Okafor (InfoSec approver)", (roles.APPROVER, roles.INFOSEC)),
    ("mira", "Mira Solberg (model-risk validator)", (roles.APPROVER, roles.MODEL_RISK)),
    ("dana", "Dana Kowalski (data steward)", (roles.DATA_STEWARD,)),
    ("bruno", "Bruno Vidal (on-call, break-glass)", (roles.MODEL_OWNER, roles.BREAK_GLASS)),
    ("olivia", "Olivia Park (no role: outsider)", ()),
]


class Command(BaseCommand):
    help = "Create demo users and demo ledger history. Safe to run again."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("seed_demo only runs with DEBUG on: it creates users with a known password")
        created = False
        if not RegisteredModel.objects.filter(name="fraud-detector").exists():
            # The story is played over the last two weeks, oldest first: only into an empty ledger, whose entry
            # times then rise with their sequence numbers (time-range exports rely on it).
            if Entry.objects.exists() or PendingEntry.objects.exists():
                raise CommandError(
                    "seed_demo plays two weeks of history and needs an empty ledger; this one has entries "
                    "(start from a fresh database)"
                )
            # Not inside one transaction: each service commits, and its after-commit
            # task moves the real MLflow alias before the story's next step.
            # The story's personas approve, reject, break glass and export; with MFA_REQUIRED on (dev.py demo
            # --sso) those need a multi-factor sign-in, which a command never has. This command runs only with
            # DEBUG on and creates accounts with a known password anyway, so it plays the story as if each
            # persona had just signed in with a second factor (amr "demo-seed"); nothing else binds this.
            with authentication_bound(Authentication(method="oidc", auth_time=int(time.time()), mfa=True,
                                                     amr=("demo-seed",))):
                seed_story(self._seed)
            created = True
        checkpoint = checkpoint_create(only_if_grown=True)
        self.stdout.write(self.style.SUCCESS("demo data " + ("loaded" if created else "already present")))
        if checkpoint is not None:
            self.stdout.write(f"signed checkpoint at tree size {checkpoint.tree_size}")
        self.stdout.write(f"\nDemo logins (password for all: {DEMO_PASSWORD}):")
        for username, title, user_roles in DEMO_USERS:
            self.stdout.write(f"  {username:<8} {title:<42} roles: {', '.join(user_roles) or '-'}")
        # dev.py demo says where it serves (--host/--port); a plain runserver serves here.
        console = os.environ.get("DEMO_CONSOLE_URL") or "http://127.0.0.1:8000/console/"
        self.stdout.write(f"\nConsole: {console}  (admin as alice or arthur)")

    @transaction.atomic
    def _seed(self) -> None:
        if User.objects.filter(username="alice").exists():
            return
        system = Actor.system("demo-seed")
        for username, title, user_roles in DEMO_USERS:
            first, _, rest = title.partition(" ")
            user = user_register(
                actor=system,
                username=username,
                password=DEMO_PASSWORD,
                full_name=f"{first} {rest.split(' (')[0]}",
                email=f"{username}@example.com",
            )
            for role in user_roles:
                user_role_add_by_system(component="demo-seed", target=user, role=role, reason="demo setup")
        alice = User.objects.get(username="alice")
        record(
            event_type="ledger.note_added",
            actor=Actor.user(alice),
            subject=Subject("registered_model", "fraud-detector"),
            payload={"text": "Quarterly model-risk review opened for fraud-detector.", "reference": "MRM-2026-Q4"},
        )
