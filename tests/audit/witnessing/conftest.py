"""Witnessing tests run against real witness processes (tests/witnesses.py, a plugin of the whole suite).

``witnesses("honest", "slow")`` starts one witness per behaviour for this log and
configures them as ``LEDGER_WITNESSES`` (quorum: all of them unless a test says otherwise).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from audit.signing import current_verifier_key
from tests.audit.witnessing.helpers import configure
from tests.witnesses import RunningWitness


@pytest.fixture
def witnesses(witness_factory: Any, settings: Any) -> Callable[..., list[RunningWitness]]:
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
