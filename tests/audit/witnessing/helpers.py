"""Helpers of the witnessing tests (plain functions)."""
from __future__ import annotations

from typing import Any

from tests.witnesses import RunningWitness


def configure(settings: Any, running: list[RunningWitness], *, quorum: int | None = None) -> None:
    """Configure ``running`` as ``LEDGER_WITNESSES`` (quorum: all of them unless given)."""
    settings.LEDGER_WITNESSES = [{"name": w.name, "url": w.url, "verifier_key": w.verifier_key} for w in running]
    settings.LEDGER_WITNESS_QUORUM = len(running) if quorum is None else quorum
