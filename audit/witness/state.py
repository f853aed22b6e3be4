"""The witness's durable memory: per log origin, the latest checkpoint it cosigned.

One JSON file (``--state``), replaced atomically: written to a temporary file in the same
directory, fsynced, ``os.replace``d over the old one, then the directory is fsynced. A crash
at any point leaves either the old or the new file, never a mix. A process holds an
exclusive ``flock`` on ``<state>.lock`` for its lifetime, so two witnesses can never share
one state file (each would trust its own memory and could cosign two forks).

Concurrent commits (for different origins) are grouped: one writer writes the union of
everything pending, the others wait for it. ``commit`` returns only once the entry is on
disk; if the write fails it raises and the in-memory state is left as it was.
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = "c2sp-tlog-witness-state/1"


class StateError(RuntimeError):
    """The state file is unreadable, malformed, or already in use by another process."""


@dataclass(frozen=True)
class LogState:
    """The latest cosigned checkpoint of one log: size, root hash, and the note as cosigned (our line included)."""

    size: int
    root: bytes
    note: str

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "root": base64.b64encode(self.root).decode(), "note": self.note}

    @classmethod
    def from_json(cls, data: Any) -> LogState:
        if not isinstance(data, dict) or set(data) != {"size", "root", "note"}:
            raise StateError(f"malformed log entry {data!r}")
        size, root, note = data["size"], data["root"], data["note"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise StateError(f"malformed size {size!r}")
        if not isinstance(root, str) or not isinstance(note, str):
            raise StateError("malformed root or note")
        raw = base64.b64decode(root, validate=True)
        if len(raw) != 32:
            raise StateError("a root hash is 32 bytes")
        return cls(size=size, root=raw, note=note)


class _Batch:
    __slots__ = ("done", "entries", "error")

    def __init__(self) -> None:
        self.entries: dict[str, LogState] = {}
        self.done = False
        self.error: BaseException | None = None


class WitnessState:
    """The committed state of every log, in memory and on disk (always the same, once ``commit`` returns).

    Callers serialise check-and-commit per origin themselves (``lock(origin)``): this class
    guarantees durability and atomic replacement, the per-origin lock guarantees that the
    state a request was checked against is still the state when it is replaced.
    """

    def __init__(self, path: Path, origins: list[str]) -> None:
        self.path = path
        self._locks = {origin: threading.Lock() for origin in origins}
        self._cond = threading.Condition()
        self._open = _Batch()
        self._writing = False
        self._lock_file = self._acquire_process_lock()
        self._logs: dict[str, LogState] = self._load()

    def _acquire_process_lock(self) -> int:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateError(f"{self.path} is in use by another witness process ({lock_path} is locked)") from None
        return fd

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._lock_file)

    def _load(self) -> dict[str, LogState]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StateError(f"cannot read {self.path}: {exc}") from None
        try:
            data = json.loads(raw)
        except ValueError:
            raise StateError(f"{self.path} is not JSON") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("logs"), dict):
            raise StateError(f"{self.path} is not a witness state file ({FORMAT})")
        try:
            return {origin: LogState.from_json(entry) for origin, entry in data["logs"].items()}
        except (StateError, ValueError) as exc:
            raise StateError(f"{self.path}: {exc}") from None

    def lock(self, origin: str) -> threading.Lock:
        return self._locks[origin]

    def get(self, origin: str) -> LogState | None:
        return self._logs.get(origin)

    def origins(self) -> list[str]:
        return sorted(self._logs)

    def commit(self, origin: str, entry: LogState) -> None:
        """Make ``entry`` the durable state of ``origin``; returns once it is on disk, raises OSError if not."""
        with self._cond:
            batch = self._open
            batch.entries[origin] = entry
            while not batch.done:
                if self._writing:
                    self._cond.wait()
                    continue
                # Become the writer of the open batch; later commits gather in a new one.
                self._writing = True
                self._open = _Batch()
                snapshot = {**self._logs, **batch.entries}
                self._cond.release()
                error: BaseException | None = None
                try:
                    self._write(snapshot)
                except BaseException as exc:  # a full disk, an I/O error: nobody in the batch may cosign
                    error = exc
                finally:
                    self._cond.acquire()
                if error is None:
                    self._logs = snapshot
                batch.done, batch.error = True, error
                self._writing = False
                self._cond.notify_all()
            if batch.error is not None:
                raise OSError(f"the witness state could not be saved: {batch.error}") from batch.error

    def _write(self, logs: dict[str, LogState]) -> None:
        data = {"format": FORMAT, "logs": {origin: logs[origin].to_json() for origin in sorted(logs)}}
        payload = (json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        directory = self.path.parent
        tmp = directory / f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
