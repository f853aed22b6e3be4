"""The ledger's checkpoint signing key.

Production passes an Ed25519 private key (PKCS#8 PEM) through LEDGER_SIGNING_KEY.
With none configured a dev key is generated under var/ with a loud warning;
settings refuse that key when DEBUG is off.
"""
from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from audit.note import public_bytes, verifier_key

logger = logging.getLogger(__name__)


def generate_key_file(path: Path) -> Ed25519PrivateKey:
    """Write a new Ed25519 private key as PKCS#8 PEM, readable by the owner only."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return key


def load_key_file(path: Path) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ImproperlyConfigured(f"LEDGER_SIGNING_KEY: no key file at {path}") from None
    except ValueError as exc:
        raise ImproperlyConfigured(f"LEDGER_SIGNING_KEY: {path} is not a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"LEDGER_SIGNING_KEY: {path} is not an Ed25519 key")
    return key


@lru_cache(maxsize=1)
def signing_key() -> Ed25519PrivateKey:
    path = Path(settings.LEDGER_SIGNING_KEY)
    if settings.LEDGER_SIGNING_KEY_IS_DEV:
        if not path.exists():
            try:
                generate_key_file(path)
            except FileExistsError:  # another process generated it first
                pass
        logger.warning(
            "ledger checkpoints are signed with the DEV key %s; set LEDGER_SIGNING_KEY in production", path
        )
    return load_key_file(path)


def key_name() -> str:
    return str(settings.LEDGER_ORIGIN)


def current_verifier_key() -> str:
    return verifier_key(key_name(), public_bytes(signing_key().public_key()))
