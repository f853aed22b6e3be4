"""Witnessing tests run against real witness processes (tests/witnesses.py) on 127.0.0.1.

``witnesses("honest", "slow")`` starts one witness per behaviour for this log and
configures them as ``LEDGER_WITNESSES`` (quorum: all of them unless a test says otherwise).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from audit.signing import current_verifier_key
from tests.access.personas import people  # noqa: F401
from tests.api.conftest import as_user, token_for  # noqa: F401
from tests.witnesses import RunningWitness, witness_factory  # noqa: F401


def configure(settings: Any, running: list[RunningWitness], *, quorum: int | None = None) -> None:
    settings.LEDGER_WITNESSES = [{"name": w.name, "url": w.url, "verifier_key": w.verifier_key} for w in running]
    settings.LEDGER_WITNESS_QUORUM = len(running) if quorum is None else quorum


@pytest.fixture
def witnesses(witness_factory: Any, settings: Any) -> Callable[..., list[RunningWitness]]:  # noqa: F811
    settings.LEDGER_WITNESS_TIMEOUT = 5.0
    settings.LEDGER_WITNESS_DEADLINE = 60.0

    def start(*behaviours: str, quorum: int | None = None) -> list[RunningWitness]:
        running = [
            witness_factory(log_vkeys=[current_verifier_key()], name=f"w{i}-{b.replace('_', '-')}.test",
                            behaviour=b)
            for i, b in enumerate(behaviours, 1)
        ]
        configure(settings, running, quorum=quorum)
        return running

    return start
