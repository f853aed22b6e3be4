"""verify_ledger reads PostgreSQL pages with COPY: the same rows as the SELECT, the same verdicts.

``_ColumnSource`` splits COPY's text format into columns of bytes and unescapes only fields with a
backslash; ``_Columns.tuples()`` must give exactly the tuples the SELECT path reads, whatever the
fields hold (COPY's own escapes, a literal ``\\N``, tabs, newlines, control characters, quotes,
non-ASCII text), and the page check over those bytes the verdict of the careful path.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audit import verification
from audit.models import Entry
from audit.verification import _Columns, _ColumnSource, _entries, _verify, trusted_keys, verify_ledger
from tests.audit.integration.helpers import fill, tamper
from tests.audit.integration.test_tampering import rewrite_from

# Field values COPY escapes or might confuse with its own syntax; each rewritten into the ledger
# with its chain recomputed (subjects untouched, so the links hold), so the careful path judges them.
NASTY = [
    ("actor_id", "tab\there"),
    ("event_type", "line\nbreak\rreturn"),
    ("actor_id", "back\\slash é"),
    ("actor_type", "\\N"),
    ("request_id", "\\N"),
    ("timestamp", "\x01\x08\x0b\x0c\x7f"),
    ("payload_json", '{"text":"a\\"quoted\\" \\\\ back\\nslash"}'),
]


def _write(seq: int, column: str, value: str) -> None:
    tamper(f"UPDATE audit_entry SET {column} = %s WHERE seq = %s", [value, seq])
    rewrite_from(seq)


def _copy_rows(chunk: int = 5, start: int | None = None, end: int | None = None) -> list[tuple[Any, ...]]:
    from django.db import connection

    return list(_ColumnSource(connection, chunk, start, end))


@pytest.mark.django_db
def test_copy_fields_are_the_select_fields(on_postgres: None, isolated_key: Path) -> None:
    fill(12, subjects=3)
    for offset, (column, value) in enumerate(NASTY):
        _write(2 + offset, column, value)
    rewrite_from(10, subject_id="é ü 中文 \U0001f600", subject_prev=None)
    rows = list(_entries(7))
    assert [row[0] for row in rows] == list(range(12))
    assert _copy_rows() == rows
    assert _copy_rows(chunk=100, start=3, end=9) == rows[3:9]
    assert _copy_rows(chunk=4, end=5) == rows[:5]


def test_copy_text_is_split_and_unescaped() -> None:
    width = len(verification._FIELDS)
    line = [b"7", b"t\\tx", b"e\\\\N", b"\\N", b"a", b"s", b"i", b"{}", b"p", b"\\N", b"h", b"r\\n\\\\"]
    page = _Columns.parse(b"\t".join(line) + b"\n")
    assert page.n == 1 and len(page.columns) == width
    assert page.tuples() == [(7, "t\tx", "e\\N", None, "a", "s", "i", "{}", "p", None, "h", "r\n\\")]
    plain = _Columns.parse(b"\t".join([b"7", *[b"x"] * 8, b"\\N", b"h", b"\\N"]) + b"\n")
    assert plain.tuples() == [(7, *["x"] * 8, None, "h", None)]
    with pytest.raises(ValueError, match="not COPY"):
        _Columns.parse(b"\t".join(line[:-1]) + b"\n")
    with pytest.raises(KeyError):  # an escape COPY never writes is refused, not guessed
        _Columns.parse(b"\t".join([*line[:-1], b"\\x41"]) + b"\n").tuples()


@pytest.mark.django_db
@pytest.mark.parametrize("page", [3, 4096])
def test_nasty_fields_get_the_careful_verdict(page: int, on_postgres: None, isolated_key: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fill(12, subjects=3)
    for offset, (column, value) in enumerate(NASTY):
        _write(2 + offset, column, value)
    monkeypatch.setattr(verification, "PAGE", page)
    careful = _verify(_entries(7), trusted_keys(), None, (), True, careful=True).as_dict()
    fast = verify_ledger(prefetch=False, lenient=True, chunk=5).as_dict()
    careful.pop("seconds"), fast.pop("seconds")
    assert fast == careful
    assert careful["ok"] is True, careful["detail"]
    assert careful["entries"] == Entry.objects.count()


@pytest.mark.django_db
def test_the_column_check_takes_a_plain_page_and_hands_on_any_other(on_postgres: None, isolated_key: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fill(8, subjects=2)
    from django.db import connection

    taken: list[bool] = []
    column_leaves = verification._Checker._column_leaves

    def spy(self: verification._Checker, page: _Columns) -> list[bytes] | None:
        leaves = column_leaves(self, page)
        taken.append(leaves is not None)
        return leaves

    monkeypatch.setattr(verification._Checker, "_column_leaves", spy)
    checker = verification._Checker(False)
    plain = _ColumnSource(connection, 100).take(8)
    assert isinstance(plain, _Columns)
    careful = verification._Checker(False)
    assert checker.page(plain) == [careful.careful(row) for row in plain.tuples()] and taken == [True]
    rewrite_from(3, actor_id='quote"d')
    checker = verification._Checker(False)
    page = _ColumnSource(connection, 100).take(8)
    assert isinstance(page, _Columns)
    careful = verification._Checker(False)
    assert checker.page(page) == [careful.careful(row) for row in page.tuples()]
    assert taken == [True, False]
