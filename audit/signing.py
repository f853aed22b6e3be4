"""The ledger's checkpoint signing key, and the lifetimes of every key checkpoints verify against.

Production passes an Ed25519 private key (PKCS#8 PEM) through LEDGER_SIGNING_KEY.
With none configured a dev key is generated under var/ with a loud warning;
settings refuse that key when DEBUG is off.

The key file is re-read whenever its identity (path, device, inode, mtime_ns,
size) changes, so a running process picks up a key the operator replaced
atomically (``os.replace``/``mv``) without a restart: one ``stat`` per call.

A key is valid for the checkpoints whose tree size S satisfies from ≤ S ≤ until
(docs/ledger-format.md, trusted-key lines). ``key_lifetimes()`` reads those bounds
from configuration only (the current key, ``LEDGER_TRUSTED_KEYS`` and
``LEDGER_TRUSTED_KEYS_FILE``, ``VAR_DIR/ledger-trusted-keys.txt``), never from the
database, whose ``SigningKey`` rows an attacker with database access could edit.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
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

from audit.note import NoteError, Verifier, public_bytes, verifier_key
from audit.offline_verify import parse_trusted_key_line

logger = logging.getLogger(__name__)

# The rotated-out keys and the bounds of every key, one trusted-key line each (rotate_signing_key writes it).
TRUSTED_KEYS_FILENAME = "ledger-trusted-keys.txt"


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


def key_name() -> str:
    return str(settings.LEDGER_ORIGIN)


# --- the current key, re-read when its file changes --------------------------------------------------------------

Identity = tuple[str, str, int, int, int, int]  # key name, path, device, inode, mtime_ns, size


@dataclass(frozen=True)
class _Loaded:
    identity: Identity
    key: Ed25519PrivateKey
    verifier_key: str


class KeyRetired(ImproperlyConfigured):
    """The key file still holds a key whose lifetime configuration has ended (it was rotated out)."""


class _CurrentKey:
    """The key in ``LEDGER_SIGNING_KEY``, cached until the file's identity changes.

    An atomic replacement (a new inode) is always seen; an in-place rewrite is seen
    as soon as its mtime or size differs, so replace the file, never edit it.
    Concurrent callers may both load a new file once; either result is the same key.
    """

    def __init__(self) -> None:
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    def load(self) -> _Loaded:
        # The hot path (nothing changed) is one stat and a tuple comparison: no Path objects, no second stat.
        name, path = settings.LEDGER_ORIGIN, settings.LEDGER_SIGNING_KEY
        try:
            st = os.stat(path)
        except FileNotFoundError:
            if not settings.LEDGER_SIGNING_KEY_IS_DEV:
                raise ImproperlyConfigured(f"LEDGER_SIGNING_KEY: no key file at {path}") from None
            try:
                generate_key_file(Path(path))
            except FileExistsError:  # another process generated it first
                pass
            st = os.stat(path)
        identity = (str(name), str(path), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
        loaded = self._loaded
        if loaded is not None and loaded.identity == identity:
            return loaded
        return self._reload(Path(path), identity)

    def _reload(self, path: Path, identity: Identity) -> _Loaded:
        dev = settings.LEDGER_SIGNING_KEY_IS_DEV
        with self._lock:
            key = load_key_file(path)
            loaded = _Loaded(identity, key, verifier_key(key_name(), public_bytes(key.public_key())))
            self._loaded = loaded
        if dev:
            logger.warning(
                "ledger checkpoints are signed with the DEV key %s; set LEDGER_SIGNING_KEY in production", path
            )
        else:
            logger.info("loaded the ledger signing key %s from %s", loaded.verifier_key.rsplit("+", 1)[0], path)
        return loaded

    def __call__(self) -> Ed25519PrivateKey:
        """The key that signs checkpoints now.

        Raises ``KeyRetired`` when configuration gives this key an end (``until=``): after a
        rotation, until the operator has replaced the key file, nothing is signed rather
        than a checkpoint the verifiers must reject as signed by a retired key.
        """
        loaded = self.load()
        lifetime = _lifetime_of(loaded.verifier_key)
        if lifetime is not None and lifetime.valid_until is not None:
            raise KeyRetired(
                f"LEDGER_SIGNING_KEY: the key in {settings.LEDGER_SIGNING_KEY} was rotated out at tree size "
                f"{lifetime.valid_until}; replace the file with the new key (rotate_signing_key printed it)"
            )
        return loaded.key

    def cache_clear(self) -> None:
        """Forget the loaded key (tests; a changed file is noticed without it)."""
        self._loaded = None
        _lifetime_cache.clear()


signing_key = _CurrentKey()


def current_verifier_key() -> str:
    """The verifier key of the key in ``LEDGER_SIGNING_KEY`` (also while it waits to be replaced after a rotation)."""
    return signing_key.load().verifier_key


# --- key lifetimes -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyLifetime:
    """A verifier key and the checkpoint tree sizes it may sign: valid_from ≤ size ≤ valid_until (None: open)."""

    verifier_key: str
    valid_from: int = 0
    valid_until: int | None = None

    def line(self) -> str:
        """The trusted-key line (interfaces I4): ``<vkey>``, then ``from=N`` when N > 0, then ``until=M``."""
        parts = [self.verifier_key]
        if self.valid_from:
            parts.append(f"from={self.valid_from}")
        if self.valid_until is not None:
            parts.append(f"until={self.valid_until}")
        return " ".join(parts)

    def allows(self, tree_size: int) -> bool:
        return self.valid_from <= tree_size and (self.valid_until is None or tree_size <= self.valid_until)

    @classmethod
    def parse(cls, line: str) -> KeyLifetime | None:
        """A trusted-key line (docs/verifying.md); None for blank and comment lines; ValueError if malformed."""
        parsed = parse_trusted_key_line(line)
        return None if parsed is None else cls(*parsed)

    @property
    def verifier(self) -> Verifier:
        return Verifier.parse(self.verifier_key)

    def narrowed(self, other: KeyLifetime) -> KeyLifetime:
        """Both constraints at once (a bare line bounds nothing; two bounded lines: the tighter bounds).

        Raises ValueError when they leave no size at all (contradicting configuration).
        """
        low = max(self.valid_from, other.valid_from)
        ends = [u for u in (self.valid_until, other.valid_until) if u is not None]
        high = min(ends) if ends else None
        if high is not None and low > high:
            raise ValueError(f"trusted key {self.verifier_key}: its lines leave no valid tree size "
                             f"({self.line()!r} and {other.line()!r})")
        return KeyLifetime(self.verifier_key, low, high)


def trusted_keys_file() -> Path:
    """The trusted-key lines ``rotate_signing_key`` maintains (``VAR_DIR/ledger-trusted-keys.txt``)."""
    return Path(settings.VAR_DIR) / TRUSTED_KEYS_FILENAME


def parse_lifetimes(lines: list[str], source: str) -> list[KeyLifetime]:
    """Every trusted-key line of ``lines`` (comments and blanks skipped); ValueError names ``source`` and the line."""
    out = []
    for number, line in enumerate(lines, 1):
        try:
            parsed = parse_trusted_key_line(line)
        except ValueError as exc:
            raise NoteError(f"{source}, line {number}: {exc}") from None
        if parsed is not None:
            out.append(KeyLifetime(*parsed))
    return out


def _file_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def _merge(lifetimes: list[KeyLifetime]) -> list[KeyLifetime]:
    merged: dict[str, KeyLifetime] = {}
    for lifetime in lifetimes:
        earlier = merged.get(lifetime.verifier_key)
        merged[lifetime.verifier_key] = lifetime if earlier is None else earlier.narrowed(lifetime)
    return list(merged.values())


def key_lifetimes() -> list[KeyLifetime]:
    """Every key checkpoints may be signed by, with the tree sizes it is valid for, from configuration only.

    The sources, all given by the operator: the current key (``LEDGER_SIGNING_KEY``),
    ``LEDGER_TRUSTED_KEYS`` (with ``LEDGER_TRUSTED_KEYS_FILE``) and the trusted-keys file.
    A key listed more than once gets the tightest bounds of its lines, so a bare line
    left over from before lifetimes existed never widens a rotation's ``until=``.
    Ordered by the first tree size each key may sign. Raises ``NoteError`` (a
    ``ValueError``) on a malformed or contradicting line, naming where it is.
    """
    lifetimes = [KeyLifetime(current_verifier_key())]
    lifetimes += parse_lifetimes(list(settings.LEDGER_TRUSTED_KEYS), "LEDGER_TRUSTED_KEYS")
    path = trusted_keys_file()
    lifetimes += parse_lifetimes(_file_lines(path), str(path))
    try:
        merged = _merge(lifetimes)
    except ValueError as exc:
        raise NoteError(str(exc)) from None
    return sorted(merged, key=lambda k: (k.valid_from, k.valid_until is None, k.valid_until or 0))


# The current key's configured lifetime, recomputed only when the key or the configuration changes:
# signing_key() is on every checkpoint's path and must stay one or two stat calls.
_lifetime_cache: dict[tuple[object, ...], KeyLifetime | None] = {}


def _lifetime_of(vkey: str) -> KeyLifetime | None:
    path = os.path.join(settings.VAR_DIR, TRUSTED_KEYS_FILENAME)
    try:
        st = os.stat(path)
        file_identity: tuple[int, ...] = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    except FileNotFoundError:
        file_identity = ()
    cache_key = (vkey, path, file_identity, tuple(settings.LEDGER_TRUSTED_KEYS))
    if cache_key not in _lifetime_cache:
        found = [k for k in key_lifetimes() if k.verifier_key == vkey]
        _lifetime_cache.clear()
        _lifetime_cache[cache_key] = found[0] if found else None
    return _lifetime_cache[cache_key]
