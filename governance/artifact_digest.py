"""The artifact digest of a model version: a SHA-256 computed here, never taken from MLflow (#13).

A SHA-256 over the sorted relative paths and contents of the version's artifact directory
(``directory_digest``). A local path is hashed in place; any other store (``mlflow-artifacts:``,
``models:/``, ``s3://``...) is listed through MLflow's artifact repository, size-checked against
``MLFLOW_DIGEST_MAX_BYTES``/``MLFLOW_DIGEST_MAX_FILES``, downloaded into a temporary directory (always
removed) and hashed there, so the same bytes give the same digest wherever they live
(``artifact_digest_of``). When the bytes cannot be read the digest is ``""`` and the reason is what the
``artifact_digest`` gate shows. A remote version whose source, run and listing are unchanged keeps its
digest until it is older than ``MLFLOW_DIGEST_RECHECK_HOURS``.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from governance import registry
from governance.directory_digest import digest_with_reason, size_text
from governance.models import (
    ModelVersion,
)
from governance.registry import is_not_found


def _local_path(uri: str, run: Any) -> Path | None:
    """The local filesystem path ``uri`` names, if it names one."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "runs":
        if run is None:
            return None
        run_path = parsed.path.lstrip("/")
        run_id, _, artifact_path = run_path.partition("/")
        if run_id != run.info.run_id:
            return None
        base = _local_path(run.info.artifact_uri or "", None)
        return base / artifact_path if base is not None else None
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(urllib.parse.unquote(parsed.path))
    if parsed.scheme == "" and uri.startswith("/"):
        return Path(uri)
    return None


@dataclass(frozen=True)
class DigestResult:
    """The artifact digest of a version, or why there is none, and what it was computed from."""

    digest: str = ""
    #: Why ``digest`` is "" (shown by the artifact_digest gate); "" when it was computed.
    error: str = ""
    #: SHA-256 of the artifact URI and its (name, size) listing ("" for local paths: hashed every sync).
    listing: str = ""
    #: When the bytes were hashed (None when they were not).
    computed_at: datetime | None = None


@dataclass(frozen=True)
class _Previous:
    """What the mirror holds of a version's digest (to keep it when nothing changed)."""

    source: str
    run_id: str
    digest: str
    listing: str
    computed_at: datetime | None


class _Refused(Exception):
    """The artifacts are not read (the message is the reason shown by the gate)."""


def _limits() -> tuple[int, int]:
    return (int(getattr(settings, "MLFLOW_DIGEST_MAX_BYTES", None) or 1024**3),
            int(getattr(settings, "MLFLOW_DIGEST_MAX_FILES", None) or 20_000))


# The pure digest lives in governance.directory_digest (no Django: the govern client runs it too); these names
# stay here because the rest of this module, and tests that spy on the hashing, use them.
_size_text = size_text
_directory_digest = digest_with_reason


def _unreadable(exc: BaseException) -> str:
    # Exception types only: a message can carry a URL with credentials or a bucket path.
    cause = exc.__cause__ or exc.__context__
    detail = f" ({type(cause).__name__})" if cause is not None else ""
    return f"artifact store unreachable: {type(exc).__name__}{detail}"


def previous_digest(mv: Any) -> _Previous | None:
    row = (ModelVersion.objects.filter(model__name=mv.name, version=int(mv.version))
           .values_list("source", "run_id", "artifact_digest", "artifact_listing", "artifact_digest_at").first())
    return _Previous(*row) if row is not None else None


def artifact_digest_of(mv: Any, run: Any, *, previous: _Previous | None = None) -> DigestResult:
    """The digest of the version's artifact bytes, computed here from MLflow's artifact store, or why not.

    A local path (``file:``, a plain path, ``runs:/`` of a local run) is hashed in place at
    every sync. Any other store (``mlflow-artifacts:``, ``models:/``, ``s3://``, ...) goes
    through MLflow's artifact repository: the files are listed first and refused over
    ``MLFLOW_DIGEST_MAX_FILES`` / ``MLFLOW_DIGEST_MAX_BYTES`` (or when the store reports no
    sizes), then downloaded into a temporary directory (always removed), checked against
    the listing and hashed with ``directory_digest`` (the same bytes give the same digest
    wherever they are). Re-downloading is skipped while the version's source, run and
    listing (names and sizes) are those of ``previous`` and its digest is younger than
    ``MLFLOW_DIGEST_RECHECK_HOURS``. Never raises for an unreadable store: the reason is
    returned. MLflow calls only: never call this inside a database transaction.
    """
    from mlflow.exceptions import MlflowException  # heavy: imported on first use, for start-up time

    try:
        uri = registry.client().get_model_version_download_uri(mv.name, mv.version) or mv.source or ""
    except MlflowException as exc:
        if is_not_found(exc):
            return DigestResult(error="MLflow has no download location for this version")
        return DigestResult(error=_unreadable(exc))
    except registry.REGISTRY_ERRORS as exc:
        return DigestResult(error=_unreadable(exc))
    if not uri:
        return DigestResult(error="the version names no artifact location")
    path = _local_path(uri, run)
    if path is not None:
        digest, error = _directory_digest(path, *_limits())
        return DigestResult(digest=digest, error=error, computed_at=timezone.now() if digest else None)
    return _remote_digest(uri, mv, previous)


def _listing(repo: Any, byte_limit: int, file_limit: int) -> dict[str, int]:
    """Every file under the repository's root and its size, refused over the limits before any download."""
    files: dict[str, int] = {}
    total, pending, listed = 0, [""], 0
    while pending:
        for info in repo.list_artifacts(pending.pop() or None):
            listed += 1
            if listed > file_limit * 2:  # directories count too: a deep empty tree must not list forever
                raise _Refused(f"more than {file_limit} files and directories (MLFLOW_DIGEST_MAX_FILES)")
            if not _safe_relative(info.path):
                # The download joins it to the temporary directory: never outside it.
                raise _Refused("the artifact store lists a path outside the artifact directory")
            if info.is_dir:
                pending.append(info.path)
                continue
            if info.file_size is None:
                raise _Refused("the artifact store reports no file sizes, so the size limit cannot be checked "
                               "before downloading")
            files[info.path] = int(info.file_size)
            total += int(info.file_size)
            if len(files) > file_limit:
                raise _Refused(f"more than {file_limit} files (MLFLOW_DIGEST_MAX_FILES)")
            if total > byte_limit:
                raise _Refused(f"artifacts larger than the {_size_text(byte_limit)} limit (MLFLOW_DIGEST_MAX_BYTES)")
    if not files:
        raise _Refused("the artifact store lists no files for this version")
    return files


def _safe_relative(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and "\\" not in path and "\0" not in path and all(
        part not in ("", ".", "..") for part in parts)


def _listing_digest(uri: str, files: Mapping[str, int]) -> str:
    doc = "\n".join([uri, *(f"{name}\0{size}" for name, size in sorted(files.items()))])
    return "sha256:" + hashlib.sha256(doc.encode()).hexdigest()


def _keep(previous: _Previous | None, mv: Any, listing: str) -> bool:
    if previous is None or not previous.digest or previous.listing != listing or previous.computed_at is None:
        return False
    if (previous.source, previous.run_id) != ((mv.source or "")[:1000], (mv.run_id or "")[:64]):
        return False
    hours = float(getattr(settings, "MLFLOW_DIGEST_RECHECK_HOURS", 24.0))
    return timezone.now() - previous.computed_at < timedelta(hours=hours)


def _downloaded(root: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    for dirpath, _dirs, names in os.walk(root, followlinks=False):
        for name in names:
            full = Path(dirpath, name)
            found[full.relative_to(root).as_posix()] = os.lstat(full).st_size
    return found


def _remote_digest(uri: str, mv: Any, previous: _Previous | None) -> DigestResult:
    # heavy: imported on first use, for start-up time
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    byte_limit, file_limit = _limits()
    try:
        repo: Any = get_artifact_repository(uri, tracking_uri=settings.MLFLOW_TRACKING_URI,
                                       registry_uri=settings.MLFLOW_REGISTRY_URI)
        files = _listing(repo, byte_limit, file_limit)
    except _Refused as refused:
        return DigestResult(error=str(refused))
    except Exception as exc:  # any store client (boto3, azure, ...): a reason, never a crash
        return DigestResult(error=_unreadable(exc))
    listing = _listing_digest(uri, files)
    if previous is not None and _keep(previous, mv, listing):
        return DigestResult(digest=previous.digest, listing=listing, computed_at=previous.computed_at)
    with tempfile.TemporaryDirectory(prefix="governance-digest-") as tmp:
        try:
            local = Path(repo.download_artifacts("", dst_path=tmp))
        except Exception as exc:  # as above
            return DigestResult(error=_unreadable(exc), listing=listing)
        # What was hashed must be what was size-checked: a store rewritten meanwhile is read again next sync.
        if _downloaded(local) != files:
            return DigestResult(error="the artifacts changed while they were being read", listing=listing)
        digest, error = _directory_digest(local, byte_limit, file_limit)
    return DigestResult(digest=digest, error=error, listing=listing, computed_at=timezone.now() if digest else None)


def directory_digest(path: Path, *, max_bytes: int | None = None, max_files: int | None = None) -> str:
    """``sha256:<hex>`` over the sorted relative paths and contents under ``path`` ("" if unavailable).

    Regular files count by content, symbolic links by their target (never followed);
    anything else is skipped. Over ``max_bytes`` or ``max_files`` the digest is not
    available (a reconcile must not hash terabytes).
    """
    byte_limit, file_limit = _limits()
    return _directory_digest(path, max_bytes or byte_limit, max_files or file_limit)[0]
