"""Rotate the checkpoint signing key: a handover checkpoint signed by the old and the new key, and both keys'
lifetimes written to the trusted-keys file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from access.roles import INFOSEC, has_role
from audit.ledger import Actor
from audit.note import public_bytes, verifier_key
from audit.services.rotation import RotationError, rotate_and_install
from audit.signing import generate_key_file, key_name, load_key_file, signing_key, trusted_keys_file


class Command(BaseCommand):
    help = (
        "Replace the checkpoint signing key: record the rotation, sign a handover checkpoint (tree size H) with "
        "the old and the new key, and write '<old> until=H' and '<new> from=H' to the trusted-keys file. In the dev "
        "setup (or with --replace-key-file) the new key replaces the key file at once; otherwise replace the file "
        "LEDGER_SIGNING_KEY names with the new key afterwards (atomically; running processes pick it up)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--new-key", metavar="PATH", help="an Ed25519 private key (PKCS#8 PEM) to rotate to")
        source.add_argument("--generate", metavar="PATH", help="generate a new key into PATH (must not exist)")
        parser.add_argument("--reason", default="scheduled signing key rotation", help="recorded in the ledger")
        parser.add_argument("--actor", metavar="USERNAME", help="the InfoSec member doing it (recorded)")
        parser.add_argument(
            "--replace-key-file", action="store_true",
            help="also write the new key over the file LEDGER_SIGNING_KEY names (atomically), as the dev setup does",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("rotate_signing_key")
        if options["actor"]:
            user = get_user_model().objects.filter(username=options["actor"]).first()
            if user is None:
                raise CommandError(f"--actor: no user named {options['actor']!r}")
            if not has_role(user, INFOSEC):
                raise CommandError(f"--actor: {options['actor']} is not an InfoSec member")
            actor = Actor.user(user)
        if not (options["reason"] or "").strip():
            raise CommandError("--reason must not be empty")
        try:
            old_key = signing_key()
        except (ImproperlyConfigured, ValueError) as exc:  # no key, a retired one, or malformed key configuration
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
        replace = True if options["replace_key_file"] else None
        try:
            checkpoint, installed = rotate_and_install(
                new_key=new_key, actor=actor, reason=options["reason"], replace_key_file=replace
            )
        except RotationError as exc:
            if generated is not None:
                os.unlink(generated)
            raise CommandError(str(exc)) from None
        size = checkpoint.tree_size
        self.stdout.write(f"rotated the checkpoint signing key of {name}")
        self.stdout.write(f"  old: {old_vkey}")
        self.stdout.write(f"  new: {new_vkey}")
        self.stdout.write(f"handover checkpoint #{checkpoint.pk} (tree size {size}), signed by both:")
        self.stdout.write(checkpoint.note, ending="")
        self.stdout.write(f"key lifetimes written to {trusted_keys_file()} (publish them: manage.py ledger_keys):")
        self.stdout.write(f"  {old_vkey} until={size}")
        self.stdout.write(f"  {new_vkey} from={size}")
        if installed:
            self.stdout.write(f"the new key is now the signing key ({settings.LEDGER_SIGNING_KEY}); running "
                              "processes pick it up at their next checkpoint, no restart needed")
        else:
            where = options["new_key"] or options["generate"]
            self.stdout.write(self.style.WARNING(
                f"now replace {settings.LEDGER_SIGNING_KEY} with {where} atomically (e.g. cp {where} "
                f"{settings.LEDGER_SIGNING_KEY}.new && mv {settings.LEDGER_SIGNING_KEY}.new "
                f"{settings.LEDGER_SIGNING_KEY}), or point LEDGER_SIGNING_KEY at it; no restart needed. Until "
                "then no checkpoint is signed: the old key is retired"))
