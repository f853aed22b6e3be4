from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from audit.checkpoints import checkpoint_create
from audit.note import Verifier, open_note


@pytest.mark.django_db
def test_ledger_keys_prints_the_key_that_verifies_checkpoints() -> None:
    # given
    checkpoint = checkpoint_create()
    assert checkpoint is not None
    out = StringIO()
    # when
    call_command("ledger_keys", stdout=out)
    # then
    keys = [Verifier.parse(line) for line in out.getvalue().splitlines()]
    assert open_note(checkpoint.note, keys).verified_by
