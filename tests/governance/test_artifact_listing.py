"""The size check before an artifact download (``governance.artifact_digest._listing``), against a store that lies.

A hostile or broken artifact store answers the listing; nothing it lists may make the product
download without a size check, write outside the temporary directory, or list forever.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from governance import artifact_digest


@dataclass
class Info:
    path: str
    is_dir: bool = False
    file_size: int | None = 1


class FakeStore:
    def __init__(self, tree: dict[str, list[Info]]) -> None:
        self.tree = tree
        self.listed: list[str | None] = []

    def list_artifacts(self, path: str | None = None) -> list[Info]:
        self.listed.append(path)
        return self.tree.get(path or "", [])

    def download_artifacts(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the listing refused: nothing is downloaded")


def refused(store: FakeStore, *, max_bytes: int = 1000, max_files: int = 10) -> str:
    with pytest.raises(artifact_digest._Refused) as caught:
        artifact_digest._listing(store, max_bytes, max_files)
    return str(caught.value)


@pytest.mark.parametrize("path", ["../escape", "model/../../escape", "/etc/passwd", "a\\..\\b", "./x", "a//b"])
def test_a_path_outside_the_artifact_directory_is_refused(path: str) -> None:
    assert refused(FakeStore({"": [Info(path)]})) == "the artifact store lists a path outside the artifact directory"


def test_files_without_sizes_are_refused_before_downloading() -> None:
    assert refused(FakeStore({"": [Info("model.bin", file_size=None)]})).startswith(
        "the artifact store reports no file sizes")


def test_sizes_and_counts_are_summed_across_directories() -> None:
    tree = {"": [Info("a", is_dir=True), Info("top.bin", file_size=600)], "a": [Info("a/b.bin", file_size=600)]}
    assert refused(FakeStore(tree)) == "artifacts larger than the 1000 bytes limit (MLFLOW_DIGEST_MAX_BYTES)"
    many = {"": [Info(f"f{i}") for i in range(11)]}
    assert refused(FakeStore(many)) == "more than 10 files (MLFLOW_DIGEST_MAX_FILES)"


def test_an_endless_tree_of_directories_stops() -> None:
    class Endless(FakeStore):
        def list_artifacts(self, path: str | None = None) -> list[Info]:
            self.listed.append(path)
            return [Info(f"{path or 'd'}/d", is_dir=True)]

    store = Endless({})
    assert refused(store).startswith("more than 10 files and directories")
    assert len(store.listed) <= 21


def test_an_empty_listing_is_a_reason() -> None:
    assert refused(FakeStore({})) == "the artifact store lists no files for this version"


def test_a_sound_listing_gives_every_file_and_size() -> None:
    tree = {"": [Info("MLmodel", file_size=12), Info("data", is_dir=True)], "data": [Info("data/w.bin", file_size=5)]}
    assert artifact_digest._listing(FakeStore(tree), 1000, 10) == {"MLmodel": 12, "data/w.bin": 5}


class Downloading(FakeStore):
    """A store whose download writes ``files`` (what it really serves) and then maybe fails."""

    def __init__(self, tree: dict[str, list[Info]], files: dict[str, bytes], *, fail: bool = False) -> None:
        super().__init__(tree)
        self.files, self.fail, self.dst = files, fail, ""

    def download_artifacts(self, artifact_path: str, dst_path: str | None = None) -> str:
        assert artifact_path == "" and dst_path
        self.dst = dst_path
        for name, content in self.files.items():
            target = Path(dst_path, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        if self.fail:
            raise ConnectionError("connection reset by peer")
        return dst_path


def remote(monkeypatch: pytest.MonkeyPatch, store: FakeStore) -> artifact_digest.DigestResult:
    import mlflow.store.artifact.artifact_repository_registry as repos

    monkeypatch.setattr(repos, "get_artifact_repository", lambda uri, **kwargs: store)
    mv = type("MV", (), {"name": "m", "version": "1", "source": "s3://bucket/m/1", "run_id": ""})()
    return artifact_digest._remote_digest("s3://bucket/m/1", mv, None)


def test_a_store_serving_more_than_it_listed_gets_no_digest_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Downloading({"": [Info("w.bin", file_size=1)]}, {"w.bin": b"x" * 5000})
    result = remote(monkeypatch, store)
    assert (result.digest, result.error) == ("", "the artifacts changed while they were being read")
    assert store.dst and not Path(store.dst).exists()


def test_a_download_that_fails_midway_is_a_reason_and_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    store = Downloading({"": [Info("w.bin", file_size=3)]}, {"w.bin": b"abc"}, fail=True)
    result = remote(monkeypatch, store)
    assert (result.digest, result.error) == ("", "artifact store unreachable: ConnectionError")
    assert "peer" not in result.error and not Path(store.dst).exists()


def test_a_sound_download_is_hashed_like_the_same_local_bytes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store = Downloading({"": [Info("d", is_dir=True)], "d": [Info("d/w.bin", file_size=3)]}, {"d/w.bin": b"abc"})
    result = remote(monkeypatch, store)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "w.bin").write_bytes(b"abc")
    assert result.digest == artifact_digest.directory_digest(tmp_path) != "" and result.error == ""
    assert result.listing.startswith("sha256:") and not Path(store.dst).exists()
