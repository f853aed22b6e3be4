"""Governance's answer to the ledger's integrity alarms (connected from ``GovernanceConfig.ready()``).

A failed verification run or a checkpoint that missed the witness quorum's deadline is sent
as ``audit.signals.integrity_failed`` inside the transaction recording it; this receiver
records an ``integrity`` compliance violation (``compliance.violation``) in that same
transaction.
"""
from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from audit import signals
from audit.ledger import Subject
from governance.services.compliance import violation_record


@receiver(signals.integrity_failed, dispatch_uid="governance.integrity_failed")
def _integrity_failed(sender: object, *, subject: Subject, summary: str, details: dict[str, Any],
                      **kwargs: object) -> None:
    violation_record(kind="integrity", subject=subject, summary=summary, details=details)
