"""Helpers of the verification tests: cosignatures (c2sp.org/tlog-cosignature), keys, verify.py runs."""
from __future__ import annotations

import base64
import hashlib
import struct
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit import offline_verify
from audit.note import public_bytes, verifier_key


def log_vkey(key: Ed25519PrivateKey, name: str) -> str:
    return verifier_key(name, public_bytes(key.public_key()))


def cosigner_vkey(name: str, key: Ed25519PrivateKey) -> str:
    """``name+hexid+base64(0x04 || key)``, key ID = SHA-256(name || "\\n" || 0x04 || key)[:4] (the spec's rule)."""
    pub = public_bytes(key.public_key())
    kid = hashlib.sha256(name.encode() + b"\n\x04" + pub).digest()[:4]
    encoded = base64.b64encode(b"\x04" + pub).decode()
    return f"{name}+{kid.hex()}+{encoded}"


def cosignature_line(checkpoint_text: str, *, name: str, key: Ed25519PrivateKey, timestamp: int) -> str:
    """A cosignature/v1 line, written here from the specification (H1's audit.cosignature when it is there)."""
    try:
        from audit.cosignature import cosignature_line as theirs  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        return str(theirs(checkpoint_text, name=name, key=key, timestamp=timestamp))
    pub = public_bytes(key.public_key())
    kid = hashlib.sha256(name.encode() + b"\n\x04" + pub).digest()[:4]
    signature = key.sign(f"cosignature/v1\ntime {timestamp}\n".encode() + checkpoint_text.encode())
    blob = base64.b64encode(kid + struct.pack(">Q", timestamp) + signature).decode()
    return f"\u2014 {name} {blob}\n"


def note_text(note: str) -> str:
    """The signed text of a signed note (without the signature lines)."""
    return note[: note.rindex("\n\n") + 1]


def run_verify(bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """verify.py as a reader runs it: a separate Python in isolated mode, no project code."""
    return subprocess.run(
        [sys.executable, "-I", offline_verify.__file__, str(bundle), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )
