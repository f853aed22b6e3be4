"""The artifact digest of a directory: pure code, no Django, no MLflow (``govern digest`` runs it on CI machines).

``sha256:<hex>`` over the sorted relative paths and contents of a directory (or one file):
one line per entry, ``F <path>\\0<sha256 of the content>\\n`` for a regular file and
``L <path>\\0<link target>\\n`` for a symbolic link (never followed); anything else (sockets,
devices) is skipped. Paths are POSIX, relative to the directory; a single file counts under its
own name. The server (``governance.artifact_digest``) and the ``govern`` client both call
``digest_with_reason`` so the same bytes give the same digest on either side
(tests/cli/test_digest.py checks them against each other on a real MLflow model directory).
"""
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

__all__ = ["digest_with_reason", "size_text"]


def size_text(size: int) -> str:
    """``size`` in the largest binary unit it reaches (``1 GiB``, ``12.5 MiB``, ``17 bytes``)."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} bytes"


def digest_with_reason(path: Path, byte_limit: int, file_limit: int) -> tuple[str, str]:
    """(``sha256:<hex>``, "") for the directory or file at ``path``, or ("", why not).

    Over ``byte_limit`` bytes of regular files or ``file_limit`` entries the digest is refused
    rather than computed (a reconcile must not hash terabytes); the reason names the limit's
    setting. Reads only; a file that vanishes or cannot be read mid-way gives ("", the error's type).
    """
    try:
        top = os.lstat(path)
    except OSError:
        return "", "the artifacts are not at their location"
    too_many = f"more than {file_limit} files (MLFLOW_DIGEST_MAX_FILES)"
    if stat.S_ISREG(top.st_mode):
        entries = [(path.name, path)]
    elif stat.S_ISDIR(top.st_mode):
        entries = []
        for root, dirs, files in os.walk(path, followlinks=False):
            for name in [*files, *(d for d in dirs if os.path.islink(os.path.join(root, d)))]:
                full = Path(root, name)
                entries.append((full.relative_to(path).as_posix(), full))
                if len(entries) > file_limit:
                    return "", too_many
    else:
        return "", "the artifact location is neither a file nor a directory"
    outer = hashlib.sha256()
    total = 0
    try:
        for rel, full in sorted(entries):
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                outer.update(f"L {rel}\0{os.readlink(full)}\n".encode())
            elif stat.S_ISREG(info.st_mode):
                total += info.st_size
                if total > byte_limit:
                    return "", f"artifacts larger than the {size_text(byte_limit)} limit (MLFLOW_DIGEST_MAX_BYTES)"
                inner = hashlib.sha256()
                with open(full, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        inner.update(chunk)
                outer.update(f"F {rel}\0{inner.hexdigest()}\n".encode())
    except OSError as exc:
        return "", f"the artifacts could not be read: {type(exc).__name__}"
    return "sha256:" + outer.hexdigest(), ""
