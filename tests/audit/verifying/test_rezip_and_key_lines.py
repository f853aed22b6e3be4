"""A bundle unzipped and zipped again with a standard tool still verifies; the trusted-key line format."""
from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from audit import offline_verify
from audit.offline_verify import parse_trusted_key_line
from tests.audit.export.helpers import Export
from tests.audit.verifying.helpers import run_verify

pytestmark = pytest.mark.django_db


def unzipped(bundle: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(folder)
    return folder


@pytest.mark.skipif(shutil.which("zip") is None, reason="needs the zip program (apt-get install zip)")
def test_a_bundle_rezipped_with_zip_r_verifies(small_ledger: str, export: Export, tmp_path: Path) -> None:
    folder = unzipped(export(), tmp_path)
    again = tmp_path / "again.zip"
    subprocess.run(["zip", "-q", "-r", str(again), "."], cwd=folder, check=True)
    assert any(n.endswith("/") for n in zipfile.ZipFile(again).namelist())  # zip -r adds "checkpoints/"

    result = run_verify(again, "--trusted-key", small_ledger)

    assert result.returncode == 0, result.stdout + result.stderr


def test_a_bundle_rezipped_with_shutil_verifies_but_an_extra_file_does_not(
        small_ledger: str, export: Export, tmp_path: Path) -> None:
    folder = unzipped(export(), tmp_path)
    again = Path(shutil.make_archive(str(tmp_path / "again"), "zip", folder))
    assert any(n.endswith("/") for n in zipfile.ZipFile(again).namelist())

    assert offline_verify.verify_bundle(str(again), [small_ledger]).verified

    # an unlisted file (not a directory entry) is still a failure
    (folder / "checkpoints" / "extra.txt").write_text("not listed\n")
    extra = Path(shutil.make_archive(str(tmp_path / "extra"), "zip", folder))
    report = offline_verify.verify_bundle(str(extra), [small_ledger])
    assert any("checkpoints/extra.txt is in the bundle but not listed" in f for f in report.failures)


@pytest.mark.parametrize(("line", "parsed"), [
    ("", None),
    ("   # a comment", None),
    ("{k}", ("{k}", 0, None)),
    ("{k} from=12", ("{k}", 12, None)),
    ("  {k}   until=40 ", ("{k}", 0, 40)),
    ("{k} from=12 until=40", ("{k}", 12, 40)),
    ("{k} until=12 from=12", ("{k}", 12, 12)),
])
def test_trusted_key_lines(line: str, parsed: tuple[str, int, int | None] | None, small_ledger: str) -> None:
    expected = None if parsed is None else (parsed[0].format(k=small_ledger), *parsed[1:])
    assert parse_trusted_key_line(line.format(k=small_ledger)) == expected


@pytest.mark.parametrize(("line", "message"), [
    ("{k} from=", "expected from=N or until=M"),
    ("{k} since=3", "expected from=N or until=M"),
    ("{k} from=-1", "expected from=N or until=M"),
    ("{k} from=1 from=2", "appears twice"),
    ("{k} from=9 until=3", "before from=9"),
    ("not-a-key", "malformed verifier key"),
    ("{k}x from=1", "verifier key"),
])
def test_malformed_trusted_key_lines_say_why(line: str, message: str, small_ledger: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_trusted_key_line(line.format(k=small_ledger))


def test_settings_refuse_a_malformed_trusted_key_line(small_ledger: str) -> None:
    from config.settings import _trusted_key_lines

    assert _trusted_key_lines(["# old keys", f"{small_ledger}  until=7"], "X") == [f"{small_ledger} until=7"]
    with pytest.raises(ImproperlyConfigured, match="LEDGER_TRUSTED_KEYS line 1"):
        _trusted_key_lines([f"{small_ledger} until=soon"], "LEDGER_TRUSTED_KEYS")
