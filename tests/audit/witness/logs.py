"""A small transparency log for witness tests: RFC 9162 trees built with audit.merkle, checkpoints
signed with a test log key through audit.note.sign_note, consistency proofs from the node store."""
from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.canonical import leaf_hash
from audit.cosignature import add_checkpoint_body
from audit.merkle import EMPTY_ROOT, CompactRange, consistency_ranges, fold, resolve
from audit.note import CheckpointBody, Verifier, public_bytes, sign_note, verifier_key

Node = tuple[int, int]


class TestLog:
    """An append-only log of ``origin``; ``fork_at`` another instance shows a second history."""

    __test__ = False  # not a pytest class

    def __init__(
        self, origin: str = "log.example/test", key: Ed25519PrivateKey | None = None, *, salt: str = ""
    ) -> None:
        self.origin = origin
        self.key = key or Ed25519PrivateKey.generate()
        self.salt = salt
        self.nodes: dict[Node, bytes] = {}
        self.leaves: list[bytes] = []
        self.range = CompactRange()

    @property
    def vkey(self) -> str:
        return verifier_key(self.origin, public_bytes(self.key.public_key()))

    @property
    def verifier(self) -> Verifier:
        return Verifier.parse(self.vkey)

    @property
    def size(self) -> int:
        return self.range.size

    def grow(self, size: int) -> TestLog:
        while self.range.size < size:
            self._append(leaf_hash(f"{self.salt}entry {self.range.size}".encode()))
        return self

    def _append(self, leaf: bytes) -> None:
        self.leaves.append(leaf)
        for level, index, h in self.range.append(leaf):
            self.nodes[(level, index)] = h

    def fork(self, *, salt: str, at: int) -> TestLog:
        """A log with the same key and origin that shares the first ``at`` entries, then differs."""
        other = TestLog(self.origin, self.key, salt=salt)
        for leaf in self.grow(at).leaves[:at]:
            other._append(leaf)
        return other

    def _fetch(self, needed: set[Node]) -> dict[Node, bytes]:
        return {node: self.nodes[node] for node in needed if node in self.nodes}

    def root(self, size: int) -> bytes:
        if size == 0:
            return EMPTY_ROOT
        return fold(resolve([(0, size)], self._fetch))

    def proof(self, old: int, new: int) -> list[bytes]:
        if old == 0 or old == new:
            return []
        return resolve(consistency_ranges(old, new), self._fetch)

    def checkpoint_text(self, size: int) -> str:
        return CheckpointBody(origin=self.origin, tree_size=size, root_hash=self.root(size)).text()

    def note(self, size: int, *, key: Ed25519PrivateKey | None = None) -> str:
        return sign_note(self.checkpoint_text(size), [(self.origin, key or self.key)])

    def request(self, old: int, new: int, *, key: Ed25519PrivateKey | None = None) -> bytes:
        self.grow(new)
        return add_checkpoint_body(old_size=old, proof=self.proof(old, new), note=self.note(new, key=key))

