"""Progress bars of the long commands: on a terminal only, off with --no-progress."""
from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from tests.ops.helpers import notes

pytestmark = pytest.mark.django_db


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def call(*command: str, stdout: StringIO) -> None:
    """call_command; verify_ledger exits 3 when nothing outside the database anchors the ledger (no witness here)."""
    try:
        call_command(*command, stdout=stdout)
    except SystemExit as exc:
        assert command[0] == "verify_ledger" and exc.code == 3


@pytest.mark.parametrize("command", [["verify_ledger"], ["verify_ledger", "--record", "full"],
                                     ["retention_run", "--dry-run"]])
def test_bar_on_a_terminal_but_not_with_no_progress(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    notes(3)
    call(*command, stdout=Terminal())
    assert capsys.readouterr().err != ""  # the bar (tqdm on stderr)
    out = Terminal()
    call(*command, "--no-progress", stdout=out)
    assert capsys.readouterr().err == ""


def test_verify_bar_is_drawn_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    notes(3)
    call("verify_ledger", stdout=Terminal())
    err = capsys.readouterr().err
    assert "verifying" in err


def test_no_bar_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    notes(3)
    out = StringIO()
    call("verify_ledger", stdout=out)
    assert "ledger consistent with itself, NOT ANCHORED" in out.getvalue()
    assert capsys.readouterr().err == ""


def test_export_accepts_no_progress(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    notes(3)
    out = Path(str(tmp_path)) / "export.zip"
    call_command("export_audit", "--out", str(out), "--no-progress", stdout=Terminal())
    assert out.exists()
    assert "exporting" not in capsys.readouterr().err
