"""No merge-conflict marker is left in a tracked file (a doc or a template renders one silently)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Git writes these at the start of a line, exactly seven characters; a Markdown rule ("---", "===") never
# has seven "=" on a line of its own in this tree, so all three are looked for.
MARKER = re.compile(rb"^(<{7} |={7}$|>{7} )", re.MULTILINE)


def test_no_tracked_file_holds_a_merge_conflict_marker() -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    found = []
    for name in filter(None, files):
        path = ROOT / name.decode()
        if path.suffix in {".lock", ".png", ".ico", ".pdf", ".zip"} or not path.is_file():
            continue
        data = path.read_bytes()
        if MARKER.search(data):
            found.append(name.decode())
    assert not found, f"merge-conflict markers left in {found}"
