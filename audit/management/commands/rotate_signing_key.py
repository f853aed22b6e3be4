"""Rotate the checkpoint signing key: a handover checkpoint signed by the old and the new key."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from access.roles import INFOSEC
from audit.export import has_role
from audit.ledger import Actor
from audit.note import public_bytes, verifier_key
from audit.rotation import RotationError, signing_key_install, signing_key_rotate
from audit.signing import generate_key_file, key_name, load_key_file, signing_key
from audit.verification import trusted_keys_file


class Command(BaseCommand):
    help = (
        "Replace the checkpoint signing key: record the rotation, sign a handover checkpoint with the old and the "
        "new key, and trust the old key from now on. In the dev setup the new key replaces the dev key; otherwise "
        "point LEDGER_SIGNING_KEY at it afterwards."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--new-key", metavar="PATH", help="an Ed25519 private key (PKCS#8 PEM) to rotate to")
        source.add_argument("--generate", metavar="PATH", help="generate a new key into PATH (must not exist)")
        parser.add_argument("--reason", default="scheduled signing key rotation", help="recorded in the ledger")
        parser.add_argument("--actor", metavar="USERNAME", help="the InfoSec member doing it (recorded)")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("rotate_signing_key")
        if options["actor"]:
            user = get_user_model().objects.filter(username=options["actor"]).first()
            if user is None:
                raise CommandError(f"--actor: no user named {options['actor']!r}")
            if not has_role(user, (INFOSEC,)):
                raise CommandError(f"--actor: {options['actor']} is not an InfoSec member")
            actor = Actor.user(user)
        if not (options["reason"] or "").strip():
            raise CommandError("--reason must not be empty")
        try:
            old_key = signing_key()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        generated: Path | None = None
        if options["new_key"]:
            try:
                new_key = load_key_file(Path(options["new_key"]).expanduser())
            except ImproperlyConfigured as exc:
                raise CommandError(str(exc).replace("LEDGER_SIGNING_KEY: ", "--new-key: ")) from None
        elif options["generate"]:
            generated = Path(options["generate"]).expanduser()
            if not generated.parent.is_dir():
                raise CommandError(f"--generate: the directory {generated.parent} does not exist")
            try:
                new_key = generate_key_file(generated)
            except FileExistsError:
                raise CommandError(f"--generate: {generated} already exists") from None
        elif settings.LEDGER_SIGNING_KEY_IS_DEV:
            new_key = Ed25519PrivateKey.generate()  # written over the dev key once the rotation is recorded
        else:
            raise CommandError("give --new-key PATH or --generate PATH (LEDGER_SIGNING_KEY is not the dev key)")
        name = key_name()
        old_vkey = verifier_key(name, public_bytes(old_key.public_key()))
        new_vkey = verifier_key(name, public_bytes(new_key.public_key()))
        try:
            checkpoint = signing_key_rotate(new_key=new_key, actor=actor, reason=options["reason"])
        except RotationError as exc:
            if generated is not None:
                os.unlink(generated)
            raise CommandError(str(exc)) from None
        installed = signing_key_install(new_key=new_key, old_verifier_key=old_vkey)
        self.stdout.write(f"rotated the checkpoint signing key of {name}")
        self.stdout.write(f"  old: {old_vkey}")
        self.stdout.write(f"  new: {new_vkey}")
        self.stdout.write(f"handover checkpoint #{checkpoint.pk} (tree size {checkpoint.tree_size}), signed by both:")
        self.stdout.write(checkpoint.note, ending="")
        self.stdout.write(f"the old key is trusted from now on: it was added to {trusted_keys_file()}")
        if installed:
            self.stdout.write(f"the new key is now the dev signing key ({settings.LEDGER_SIGNING_KEY}); restart "
                              "other processes so they stop using the old one")
        else:
            where = options["new_key"] or options["generate"]
            self.stdout.write(self.style.WARNING(
                f"now set LEDGER_SIGNING_KEY={where} and restart; until then checkpoints are signed with the old key "
                "(still valid, and trusted)"))
