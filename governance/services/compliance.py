"""Compliance violations: recorded for InfoSec, and acknowledged by InfoSec.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from access import roles
from access.roles import role_names
from audit.ledger import Actor, Subject, record
from governance import lock_objects
from governance.errors import InvalidState, NotPermitted
from governance.models import (
    ComplianceViolation,
)
from governance.services.common import require_text


@transaction.atomic
def violation_record(
    *, kind: str, subject: Subject, summary: str, details: dict[str, Any], reverted: bool = False,
    actor: Actor | None = None,
) -> ComplianceViolation:
    violation = ComplianceViolation.objects.create(
        kind=kind, subject_type=subject.type, subject_id=subject.id, summary=summary[:500], details=details,
        reverted=reverted,
    )
    record(
        event_type="compliance.violation",
        actor=actor or Actor.system("compliance"),
        subject=subject,
        payload={"violation_id": violation.pk, "kind": kind, "summary": summary[:500], "details": details,
                 "reverted": reverted},
    )
    return violation


@transaction.atomic
def violation_acknowledge(
    *, actor: User, violation: ComplianceViolation, comment: str
) -> ComplianceViolation:
    comment = require_text(comment, "comment")
    if roles.INFOSEC not in role_names(actor):
        raise NotPermitted("only InfoSec may acknowledge a compliance violation")
    violation = lock_objects.violations_lock().get(pk=violation.pk)
    if violation.acknowledged_at is not None:
        raise InvalidState("this violation is already acknowledged")
    violation.acknowledged_by = actor
    violation.acknowledged_at = timezone.now()
    violation.acknowledgement = comment
    violation.save(update_fields=["acknowledged_by", "acknowledged_at", "acknowledgement"])
    record(
        event_type="compliance.violation_acknowledged",
        actor=Actor.user(actor),
        subject=Subject(violation.subject_type, violation.subject_id),
        payload={"violation_id": violation.pk, "kind": violation.kind, "comment": comment},
    )
    return violation
