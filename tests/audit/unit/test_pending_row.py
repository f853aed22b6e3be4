"""The intake queue's cheap row class builds PendingEntry positionally: its field order must match."""
from __future__ import annotations

from audit.ledger import _PENDING_COLUMNS, _Row
from audit.models import PendingEntry


def test_the_positional_model_matches_the_columns() -> None:
    # given
    assert [f.attname for f in PendingEntry._meta.concrete_fields] == ["id", *_PENDING_COLUMNS]
    values = ("2026-11-29T06:41:04.123456Z", "a.b", "user", "1", "t", "i", "{}", "key", "req-1")
    row = _Row(*values)
    row.pk = 7
    # when
    model = row.model()
    # then
    assert model.pk == 7
    assert tuple(getattr(model, c) for c in _PENDING_COLUMNS) == values == row.values()
