"""Key lifetimes: the trusted-key line grammar, and key_lifetimes() built from configuration only."""
from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import connection
from django.test import override_settings

from audit import triggers
from audit.models import SigningKey
from audit.note import NoteError, public_bytes, verifier_key
from audit.offline_verify import parse_trusted_key_line
from audit.services.checkpoints import checkpoint_create
from audit.signing import (
    KeyLifetime,
    current_verifier_key,
    key_lifetimes,
    key_name,
    trusted_keys_file,
)
from tests.audit.integration.helpers import fill


def vkey_of(key: Ed25519PrivateKey | None = None) -> str:
    return verifier_key(key_name(), public_bytes((key or Ed25519PrivateKey.generate()).public_key()))


def test_trusted_key_lines_of_every_form_parse() -> None:
    v = vkey_of()
    assert parse_trusted_key_line(v) == (v, 0, None)
    assert parse_trusted_key_line(f"  {v}  from=7 ") == (v, 7, None)
    assert parse_trusted_key_line(f"{v} until=9") == (v, 0, 9)
    assert parse_trusted_key_line(f"{v} from=3 until=3") == (v, 3, 3)
    assert parse_trusted_key_line(f"{v} until=9 from=2") == (v, 2, 9)  # either order
    assert parse_trusted_key_line("") is None
    assert parse_trusted_key_line("   # a comment with from=1") is None


@pytest.mark.parametrize("suffix, message", [
    ("from=-1", "expected from=N or until=M"),
    ("from=x", "expected from=N or until=M"),
    ("from=\u0661", "expected from=N or until=M"),  # a non-ASCII digit
    ("since=4", "expected from=N or until=M"),
    ("from", "expected from=N or until=M"),
    ("from=1 from=2", "from= appears twice"),
    ("until=1 until=2", "until= appears twice"),
    ("from=5 until=4", "until=4 is before from=5"),
    ("until=4 from=5", "until=4 is before from=5"),
    ("# trailing comment", "expected from=N or until=M"),
])
def test_malformed_trusted_key_lines_are_refused_with_the_problem(suffix: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_trusted_key_line(f"{vkey_of()} {suffix}")


def test_a_malformed_verifier_key_is_refused() -> None:
    v = vkey_of()
    forged = v[:-4] + ("AAAA" if not v.endswith("AAAA") else "BBBB")  # the key no longer matches its key ID
    for line in ("not-a-key", f"{forged} until=3", v.replace("+", "-", 1)):
        with pytest.raises(ValueError):
            parse_trusted_key_line(line)


def test_a_lifetime_line_round_trips() -> None:
    v = vkey_of()
    for lifetime in (KeyLifetime(v), KeyLifetime(v, 5), KeyLifetime(v, 0, 8), KeyLifetime(v, 2, 9)):
        assert KeyLifetime(*parse_trusted_key_line(lifetime.line()) or ()) == lifetime
    assert KeyLifetime(v).line() == v
    assert KeyLifetime(v, 2, 9).line() == f"{v} from=2 until=9"
    assert KeyLifetime(v, 2, 9).allows(2) and KeyLifetime(v, 2, 9).allows(9)
    assert not KeyLifetime(v, 2, 9).allows(1) and not KeyLifetime(v, 2, 9).allows(10)


def test_with_nothing_configured_the_current_key_is_valid_for_every_size(db: None) -> None:
    assert key_lifetimes() == [KeyLifetime(current_verifier_key(), 0, None)]


def test_every_configured_source_counts_and_the_tightest_bounds_win(db: None) -> None:
    current, old, older = current_verifier_key(), vkey_of(), vkey_of()
    trusted_keys_file().write_text(f"# rotations\n{older} until=10\n{old} from=10 until=50\n{current} from=50\n")
    # a bare line for the same key (left from before lifetimes) widens nothing
    with override_settings(LEDGER_TRUSTED_KEYS=[old, f"{older} from=0"]):
        lifetimes = key_lifetimes()
    assert [k.line() for k in lifetimes] == [f"{older} until=10", f"{old} from=10 until=50", f"{current} from=50"]


def test_contradicting_or_malformed_configuration_is_an_error_naming_where(db: None) -> None:
    old = vkey_of()
    trusted_keys_file().write_text(f"{old} until=10\n")
    with override_settings(LEDGER_TRUSTED_KEYS=[f"{old} from=20"]):
        with pytest.raises(NoteError, match="leave no valid tree size"):
            key_lifetimes()
    trusted_keys_file().write_text(f"# header\n{old} until=ten\n")
    with pytest.raises(NoteError, match=rf"{trusted_keys_file()}, line 2: .*until=ten"):
        key_lifetimes()
    trusted_keys_file().unlink()
    with override_settings(LEDGER_TRUSTED_KEYS=["garbage"]):
        with pytest.raises(NoteError, match="LEDGER_TRUSTED_KEYS, line 1"):
            key_lifetimes()


def test_a_database_owner_editing_signing_key_rows_changes_no_lifetime(db: None) -> None:
    """Attack: with triggers off, delete the published keys and register a key of the attacker's own."""
    old = vkey_of()
    trusted_keys_file().write_text(f"{old} until=5\n{current_verifier_key()} from=5\n")
    fill(3)
    checkpoint_create()
    before = key_lifetimes()
    attacker = Ed25519PrivateKey.generate()
    forged = vkey_of(attacker)
    with triggers.disabled(connection):
        SigningKey.objects.all().delete()
        SigningKey.objects.create(name=key_name(), key_id=forged.split("+")[1],
                                  public_key=forged.split("+")[2], verifier_key=forged)
    assert list(SigningKey.objects.values_list("verifier_key", flat=True)) == [forged]
    assert key_lifetimes() == before
    assert forged not in {k.verifier_key for k in key_lifetimes()}


def test_the_trusted_keys_file_is_under_var_dir(var_dir: Path) -> None:
    assert trusted_keys_file() == var_dir / "ledger-trusted-keys.txt"
