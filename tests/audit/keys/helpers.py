"""Helpers of the key tests (plain functions)."""
from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat


def write_key(path: Path, key: Ed25519PrivateKey | None = None) -> Ed25519PrivateKey:
    """Write ``key`` (a new one by default) over ``path`` as an operator would: a sibling file renamed over it."""
    key = key or Ed25519PrivateKey.generate()
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    tmp.replace(path)
    return key
