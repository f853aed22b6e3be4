"""The size check before an artifact download (``governance.sync._listing``), against a store that lies.

A hostile or broken artifact store answers the listing; nothing it lists may make the product
download without a size check, write outside the temporary directory, or list forever.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from governance import sync


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
    with pytest.raises(sync._Refused) as caught:
        sync._listing(store, max_bytes, max_files)
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
    assert sync._listing(FakeStore(tree), 1000, 10) == {"MLmodel": 12, "data/w.bin": 5}
