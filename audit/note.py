"""C2SP signed-note and tlog-checkpoint encoding with Ed25519 keys.

Pure functions over bytes and ``cryptography`` keys, no Django: the offline
verifier uses the same rules.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = b"\x01"
SIG_PREFIX = "\u2014 "  # em dash, space


class NoteError(ValueError):
    """A note or checkpoint is malformed, or its signature does not verify."""


def _has_control_chars(text: str) -> bool:
    # signed-note: no ASCII control characters other than newline.
    return any(c < " " and c != "\n" for c in text)


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, public: bytes) -> bytes:
    """signed-note key ID: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public).digest()[:4]


def verifier_key(name: str, public: bytes) -> str:
    """The verifier-key string ``name+hexid+base64(0x01 || key)``."""
    return f"{name}+{key_id(name, public).hex()}+{base64.b64encode(ED25519 + public).decode()}"


@dataclass(frozen=True)
class Verifier:
    name: str
    key_id: bytes
    public: Ed25519PublicKey

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        try:
            name, hex_id, b64 = vkey.strip().split("+", 2)
            raw = base64.b64decode(b64, validate=True)
            kid = bytes.fromhex(hex_id)
        except ValueError:
            raise NoteError(f"malformed verifier key {vkey!r}") from None
        if not name or len(kid) != 4 or len(raw) != 33 or raw[:1] != ED25519:
            raise NoteError(f"malformed or non-Ed25519 verifier key {vkey!r}")
        if key_id(name, raw[1:]) != kid:
            raise NoteError(f"verifier key {vkey!r} has a key ID that does not match its key")
        return cls(name=name, key_id=kid, public=Ed25519PublicKey.from_public_bytes(raw[1:]))

    def __str__(self) -> str:
        return verifier_key(self.name, public_bytes(self.public))


def sign_note(text: str, signers: list[tuple[str, Ed25519PrivateKey]]) -> str:
    """Sign ``text`` (which must end in a newline) with every (name, key) given."""
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if _has_control_chars(text):
        raise NoteError("note text must not contain control characters other than newline")
    lines = []
    for name, private in signers:
        kid = key_id(name, public_bytes(private.public_key()))
        sig = private.sign(text.encode())
        lines.append(f"{SIG_PREFIX}{name} {base64.b64encode(kid + sig).decode()}\n")
    return text + "\n" + "".join(lines)


@dataclass(frozen=True)
class OpenedNote:
    text: str
    verified_by: list[Verifier]
    unknown_signatures: int


def open_note(note: str, verifiers: list[Verifier]) -> OpenedNote:
    """Split a signed note and verify it; raises NoteError unless a known key verified it.

    Signatures by unknown keys are ignored (as the spec requires); a signature by
    a known key that fails to verify rejects the whole note.
    """
    if "\n\n" not in note or not note.endswith("\n"):
        raise NoteError("not a signed note: no blank line before the signatures")
    if _has_control_chars(note):
        raise NoteError("a signed note must not contain control characters other than newline")
    split = note.rindex("\n\n")
    text, sig_block = note[: split + 1], note[split + 2 :]
    known = {(v.name, v.key_id): v for v in verifiers}
    verified: list[Verifier] = []
    seen: set[tuple[str, bytes]] = set()
    unknown_lines: set[str] = set()
    unknown = 0
    for line in sig_block.splitlines():
        if not line.startswith(SIG_PREFIX):
            raise NoteError(f"malformed signature line {line!r}")
        try:
            name, b64 = line[len(SIG_PREFIX) :].split(" ")
            blob = base64.b64decode(b64, validate=True)
        except ValueError:
            raise NoteError(f"malformed signature line {line!r}") from None
        if len(blob) < 5:
            raise NoteError(f"malformed signature line {line!r}")
        verifier = known.get((name, blob[:4]))
        if verifier is None:
            if line not in unknown_lines:
                unknown_lines.add(line)
                unknown += 1
            continue
        if (name, blob[:4]) in seen:
            continue  # a known key counts once, however often it signed
        seen.add((name, blob[:4]))
        try:
            verifier.public.verify(blob[4:], text.encode())
        except InvalidSignature:
            raise NoteError(f"signature by {name}+{blob[:4].hex()} does not verify") from None
        verified.append(verifier)
    if not verified:
        raise NoteError("no signature from a known key")
    return OpenedNote(text=text, verified_by=verified, unknown_signatures=unknown)


@dataclass(frozen=True)
class CheckpointBody:
    origin: str
    tree_size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.tree_size), base64.b64encode(self.root_hash).decode(), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> CheckpointBody:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("checkpoint must have an origin, a size and a root hash, each ending in a newline")
        origin, size, root = lines[0], lines[1], lines[2]
        if not origin or not (size.isascii() and size.isdigit()) or (size != "0" and size.startswith("0")):
            raise NoteError("checkpoint origin or tree size is malformed")
        if any(not line for line in lines[3:-1]):
            raise NoteError("checkpoint extension lines must be non-empty")
        try:
            root_hash = base64.b64decode(root, validate=True)
        except ValueError:
            raise NoteError("checkpoint root hash is not base64") from None
        if len(root_hash) != 32:
            raise NoteError("checkpoint root hash is not 32 bytes")
        return cls(origin=origin, tree_size=int(size), root_hash=root_hash, extensions=tuple(lines[3:-1]))
