"""C2SP tlog-cosignature (Ed25519, ``cosignature/v1``) and the tlog-witness request body.

Pure functions over text and ``cryptography`` keys, no Django: the witness process
(``python -m audit.witness``) and the log side share them, and a witness must not
import anything that reads the log's settings or database.

- c2sp.org/tlog-cosignature: a cosignature is a signed-note signature line whose key
  ID uses signature type 0x04 and whose signature is ``u64be timestamp || Ed25519
  signature`` over ``"cosignature/v1\\ntime <T>\\n" || checkpoint text``.
- c2sp.org/tlog-witness: the ``add-checkpoint`` body is an ``old <size>`` line, at most
  63 consistency-proof lines (base64 hashes), an empty line, then the signed checkpoint.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.note import SIG_PREFIX, CheckpointBody, NoteError, public_bytes

COSIGNATURE_V1 = b"\x04"
HEADER = "cosignature/v1\n"
MAX_TIMESTAMP = 2**63 - 1
MAX_PROOF_LINES = 63
HASH_SIZE = 32
# keyid(4) || timestamp(8) || Ed25519 signature(64)
_BLOB_SIZE = 4 + 8 + 64
# The largest tree size either side accepts: sizes are u64 on the wire of most
# implementations, and Go's witnesses parse them as int64.
MAX_TREE_SIZE = 2**63 - 1
# signed-note: no ASCII control characters other than newline (a regex: a per-character loop
# over every request body costs more than the Ed25519 verification).
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")


class ProtocolError(ValueError):
    """A tlog-witness request or answer breaks the protocol; ``status`` is the HTTP status a witness answers."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def cosigner_key_id(name: str, public: bytes) -> bytes:
    """tlog-cosignature key ID: SHA-256(name || 0x0A || 0x04 || 32-byte Ed25519 public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + COSIGNATURE_V1 + public).digest()[:4]


def cosigner_verifier_key(name: str, public: bytes) -> str:
    """The cosigner's vkey ``name+hexid+base64(0x04 || key)`` (signed-note verifier-key format)."""
    _check_name(name)
    if len(public) != 32:
        raise NoteError("an Ed25519 public key is 32 bytes")
    return f"{name}+{cosigner_key_id(name, public).hex()}+{base64.b64encode(COSIGNATURE_V1 + public).decode()}"


def _check_name(name: str) -> None:
    # signed-note: key names are non-empty and contain no Unicode spaces or plus signs.
    if not name or "+" in name or any(c.isspace() for c in name) or any(c < " " for c in name):
        raise NoteError(f"malformed key name {name!r}")


def _b64(text: str) -> bytes:
    """Strict standard base64: the alphabet, padding, and the canonical encoding only."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{text!r} is not base64") from None
    if base64.b64encode(raw).decode() != text:
        raise ValueError(f"{text!r} is not canonical base64")
    return raw


@dataclass(frozen=True)
class Cosigner:
    """A witness as a verifier knows it: name, 0x04 key ID and Ed25519 public key."""

    name: str
    key_id: bytes
    public: Ed25519PublicKey

    @classmethod
    def parse(cls, vkey: str) -> Cosigner:
        """Parse a cosigner vkey; raises ``NoteError`` if malformed, not type 0x04, or its ID does not match."""
        try:
            name, hex_id, b64 = vkey.strip().split("+", 2)
            raw = _b64(b64)
        except ValueError:
            raise NoteError(f"malformed cosigner verifier key {vkey!r}") from None
        if len(hex_id) != 8 or any(c not in "0123456789abcdefABCDEF" for c in hex_id):
            raise NoteError(f"malformed key ID in cosigner verifier key {vkey!r}")
        _check_name(name)
        if len(raw) != 33 or raw[:1] != COSIGNATURE_V1:
            raise NoteError(f"{vkey!r} is not a timestamped Ed25519 cosigner key (type 0x04)")
        kid = bytes.fromhex(hex_id)
        if cosigner_key_id(name, raw[1:]) != kid:
            raise NoteError(f"cosigner verifier key {vkey!r} has a key ID that does not match its key")
        return cls(name=name, key_id=kid, public=Ed25519PublicKey.from_public_bytes(raw[1:]))

    @classmethod
    def from_key(cls, name: str, public: Ed25519PublicKey) -> Cosigner:
        raw = public_bytes(public)
        _check_name(name)
        return cls(name=name, key_id=cosigner_key_id(name, raw), public=public)

    def __str__(self) -> str:
        return cosigner_verifier_key(self.name, public_bytes(self.public))


def signed_message(checkpoint_text: str, timestamp: int) -> bytes:
    """The bytes a v1 cosignature signs: header line, time line, then the whole checkpoint text."""
    return f"{HEADER}time {timestamp}\n{checkpoint_text}".encode()


def _check_timestamp(timestamp: int) -> None:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise NoteError(f"a cosignature timestamp is an integer from 0 to 2^63-1, not {timestamp!r}")


def cosignature_line(checkpoint_text: str, *, name: str, key: Ed25519PrivateKey, timestamp: int) -> str:
    """The note signature line ``— name base64(keyid || u64be timestamp || sig)\\n`` cosigning ``checkpoint_text``.

    ``checkpoint_text`` is the note text (the checkpoint body with its final newline, no
    signature lines); it must parse as a tlog checkpoint.
    """
    _check_name(name)
    _check_timestamp(timestamp)
    CheckpointBody.parse(checkpoint_text)
    if _CONTROL.search(checkpoint_text):
        raise NoteError("a checkpoint must not contain control characters other than newline")
    kid = cosigner_key_id(name, public_bytes(key.public_key()))
    sig = key.sign(signed_message(checkpoint_text, timestamp))
    blob = kid + timestamp.to_bytes(8, "big") + sig
    return f"{SIG_PREFIX}{name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True)
class Cosignature:
    """A verified cosignature: who, when (POSIX seconds), and its signature line (ending in a newline)."""

    cosigner: Cosigner
    timestamp: int
    line: str


def split_note(note: str) -> tuple[str, list[str]]:
    """Split a signed note into its text (final newline included) and its signature lines (without newline).

    Raises ``NoteError`` when it is not a signed note: no blank line before the
    signatures, control characters, or a signature line of the wrong shape.
    """
    if "\n\n" not in note or not note.endswith("\n"):
        raise NoteError("not a signed note: no blank line before the signatures")
    if _CONTROL.search(note):
        raise NoteError("a signed note must not contain control characters other than newline")
    split = note.rindex("\n\n")
    text, sig_block = note[: split + 1], note[split + 2 :]
    lines = sig_block.splitlines()
    if not lines:
        raise NoteError("a signed note has at least one signature line")
    for line in lines:
        if not line.startswith(SIG_PREFIX) or line.count(" ") != 2:
            raise NoteError(f"malformed signature line {line!r}")
    return text, lines


def verify_cosignatures(note: str, cosigners: list[Cosigner]) -> list[Cosignature]:
    """Every valid cosignature in the signed note ``note`` by one of ``cosigners``, in note order.

    Lines by other keys (the log's own signature, unknown witnesses) are ignored, as
    signed-note requires. A line whose name and key ID match a known cosigner must
    verify: a malformed blob, a timestamp above 2^63-1 or a bad signature raises
    ``NoteError``. A cosigner that signed twice is reported once (its first line).
    An empty list means no known cosigner signed; the caller decides if that is enough.
    """
    text, lines = split_note(note)
    known = {(c.name, c.key_id): c for c in cosigners}
    found: list[Cosignature] = []
    seen: set[tuple[str, bytes]] = set()
    for line in lines:
        name, b64 = line[len(SIG_PREFIX) :].split(" ")
        try:
            blob = _b64(b64)
        except ValueError:
            raise NoteError(f"malformed signature line {line!r}") from None
        cosigner = known.get((name, blob[:4]))
        if cosigner is None or (name, blob[:4]) in seen:
            continue
        if len(blob) != _BLOB_SIZE:
            raise NoteError(f"cosignature by {name}+{blob[:4].hex()} is {len(blob)} bytes, not {_BLOB_SIZE}")
        timestamp = int.from_bytes(blob[4:12], "big")
        if timestamp > MAX_TIMESTAMP:
            raise NoteError(f"cosignature by {name}+{blob[:4].hex()} has a timestamp above 2^63-1")
        try:
            cosigner.public.verify(blob[12:], signed_message(text, timestamp))
        except InvalidSignature:
            raise NoteError(f"cosignature by {name}+{blob[:4].hex()} does not verify") from None
        seen.add((name, blob[:4]))
        found.append(Cosignature(cosigner=cosigner, timestamp=timestamp, line=line + "\n"))
    return found


def _size(text: str, what: str) -> int:
    # ASCII decimal, no sign, no leading zeroes unless the value is zero (tlog-witness).
    if not text or not text.isascii() or not text.isdigit() or (text != "0" and text.startswith("0")):
        raise ProtocolError(f"{what} {text!r} is not a decimal size without leading zeroes")
    if len(text) > 19 or int(text) > MAX_TREE_SIZE:
        raise ProtocolError(f"{what} {text!r} is larger than 2^63-1")
    return int(text)


def add_checkpoint_body(*, old_size: int, proof: list[bytes], note: str) -> bytes:
    """The tlog-witness ``add-checkpoint`` request body.

    ``note`` is the signed checkpoint (text, blank line, signature lines). Raises
    ``ProtocolError`` for what a witness would refuse as malformed: a negative size,
    more than 63 proof hashes, a hash that is not 32 bytes, a proof with old size 0.
    """
    if isinstance(old_size, bool) or not isinstance(old_size, int) or not 0 <= old_size <= MAX_TREE_SIZE:
        raise ProtocolError(f"old size {old_size!r} is not a tree size")
    if len(proof) > MAX_PROOF_LINES:
        raise ProtocolError(f"a consistency proof has at most {MAX_PROOF_LINES} hashes, not {len(proof)}")
    if old_size == 0 and proof:
        raise ProtocolError("the consistency proof must be empty when the old size is 0")
    if any(len(h) != HASH_SIZE for h in proof):
        raise ProtocolError(f"consistency proof hashes are {HASH_SIZE} bytes")
    lines = [f"old {old_size}\n", *(base64.b64encode(h).decode() + "\n" for h in proof), "\n"]
    return ("".join(lines) + note).encode()


@dataclass(frozen=True)
class AddCheckpoint:
    """A parsed ``add-checkpoint`` request: the witness still has to check signatures and the proof."""

    old_size: int
    proof: list[bytes]
    note: str
    # The parsed checkpoint, kept by ``parse`` so the witness does not parse it twice.
    _checkpoint: CheckpointBody | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, body: bytes) -> AddCheckpoint:
        """Parse a request body; raises ``ProtocolError(status=400)`` for anything malformed.

        Checked here: UTF-8; ``old <size>`` (decimal, no leading zeroes, ≤ 2^63-1); at most
        63 proof lines, each the canonical base64 of a 32-byte hash; none when old is 0;
        the blank line; a signed note whose text is a tlog checkpoint. Not checked here:
        which keys signed it, old ≤ size against the checkpoint (the witness does it,
        also 400), the proof itself (422).
        """
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("the request body is not UTF-8") from None
        head, sep, note = text.partition("\n\n")
        if not sep:
            raise ProtocolError("the request has no empty line before the checkpoint")
        lines = head.split("\n")
        if not lines[0].startswith("old "):
            raise ProtocolError("the request does not start with an 'old <size>' line")
        old_size = _size(lines[0][4:], "old size")
        proof_lines = lines[1:]
        if len(proof_lines) > MAX_PROOF_LINES:
            raise ProtocolError(f"a consistency proof has at most {MAX_PROOF_LINES} lines, not {len(proof_lines)}")
        proof: list[bytes] = []
        for line in proof_lines:
            try:
                h = _b64(line)
            except ValueError as exc:
                raise ProtocolError(f"consistency proof line: {exc}") from None
            if len(h) != HASH_SIZE:
                raise ProtocolError(f"consistency proof line {line!r} is not a {HASH_SIZE}-byte hash")
            proof.append(h)
        if old_size == 0 and proof:
            raise ProtocolError("the consistency proof must be empty when the old size is 0")
        try:
            checkpoint_text, _ = split_note(note)
            checkpoint = CheckpointBody.parse(checkpoint_text)
        except NoteError as exc:
            raise ProtocolError(f"malformed checkpoint: {exc}") from None
        if checkpoint.tree_size > MAX_TREE_SIZE:
            raise ProtocolError("the checkpoint's tree size is larger than 2^63-1")
        return cls(old_size=old_size, proof=proof, note=note, _checkpoint=checkpoint)

    def checkpoint(self) -> CheckpointBody:
        """The checkpoint body of ``note``; raises ``NoteError`` if it is not one (``parse`` checked it)."""
        return self._checkpoint or CheckpointBody.parse(split_note(self.note)[0])
