"""The quorum policy: a checkpoint without LEDGER_WITNESS_QUORUM cosignatures by its deadline is a violation,
once per stall, on the dashboard, in the metrics and in /status (degraded; /readyz is not affected)."""
from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from audit.cosignature import verify_cosignatures
from audit.models import Checkpoint, WitnessCosignature, WitnessQuorumStall
from audit.note import NoteError
from audit.services.checkpoints import checkpoint_create
from audit.services.witnessing import (
    checkpoint_witness,
    configured_witnesses,
    published_note,
    witness_quorum_check,
    witness_quorum_status,
)
from governance.models import ComplianceViolation
from tests.audit.integration.helpers import fill
from tests.ops.test_metrics import TOKEN, scrape, value

pytestmark = pytest.mark.django_db


def checkpoint_of(n: int) -> Checkpoint:
    fill(n)
    checkpoint = checkpoint_create()
    assert checkpoint is not None
    return checkpoint


def quorum_violations() -> list[ComplianceViolation]:
    return [v for v in ComplianceViolation.objects.filter(kind="integrity") if v.details.get("witness_quorum")]


def later(settings: Any, extra: float = 1.0) -> Any:
    return timezone.now() + timedelta(seconds=float(settings.LEDGER_WITNESS_DEADLINE) + extra)


def test_a_quorum_met_raises_nothing(witnesses: Any, settings: Any) -> None:
    witnesses("honest", "honest")
    checkpoint = checkpoint_of(4)
    checkpoint_witness(checkpoint_id=checkpoint.pk)
    status = witness_quorum_check(now=later(settings), resubmit=False)
    assert status.ok and status.quorum_size == checkpoint.tree_size and status.lag == 0
    assert quorum_violations() == []


def test_a_missed_deadline_is_one_violation_per_stall(witnesses: Any, settings: Any) -> None:
    _honest, impostor = witnesses("honest", "wrong_key")  # quorum 2: the impostor's cosignature never counts
    first = checkpoint_of(4)
    checkpoint_witness(checkpoint_id=first.pk)

    assert witness_quorum_check(now=timezone.now(), resubmit=False).ok  # not yet past its deadline
    status = witness_quorum_check(now=later(settings), resubmit=False)
    assert not status.ok and status.overdue_size == first.tree_size and status.quorum_size == 0
    # Checked again and again while it lasts, and with a newer checkpoint also missing it: still one.
    witness_quorum_check(now=later(settings, 30), resubmit=True)
    checkpoint_witness(checkpoint_id=checkpoint_of(2).pk)
    witness_quorum_check(now=later(settings, 60), resubmit=False)
    (violation,) = quorum_violations()
    assert violation.details["tree_size"] == first.tree_size and impostor.name in violation.details["errors"]
    assert WitnessQuorumStall.objects.filter(is_open=True).count() == 1

    # The quorum is met again (the operator lowered it): the stall closes; the next stall is a new violation.
    settings.LEDGER_WITNESS_QUORUM = 1
    assert witness_quorum_check(now=later(settings), resubmit=False).ok
    assert not WitnessQuorumStall.objects.filter(is_open=True).exists()
    settings.LEDGER_WITNESS_QUORUM = 2
    checkpoint_witness(checkpoint_id=checkpoint_of(1).pk)
    witness_quorum_check(now=later(settings), resubmit=False)
    assert len(quorum_violations()) == 2


def test_the_periodic_check_resubmits_to_a_witness_that_was_down(witnesses: Any, settings: Any) -> None:
    _w1, w2 = witnesses("honest", "honest")
    w2.stop()
    checkpoint = checkpoint_of(3)
    checkpoint_witness(checkpoint_id=checkpoint.pk)
    assert not witness_quorum_status().quorum_size
    w2.restart()
    status = witness_quorum_check(now=later(settings))
    assert status.ok and status.quorum_size == checkpoint.tree_size
    assert WitnessCosignature.objects.filter(checkpoint=checkpoint).count() == 2
    assert quorum_violations() == []


def test_readyz_stays_ready_and_status_reports_witness_quorum_degraded(witnesses: Any, settings: Any,
                                                                       client: Client) -> None:
    settings.METRICS_TOKEN = TOKEN
    witnesses("honest", "wrong_key")
    settings.LEDGER_WITNESS_DEADLINE = 0.01
    checkpoint_witness(checkpoint_id=checkpoint_of(3).pk)
    response = client.get("/readyz")
    body = json.loads(response.content)
    assert response.status_code == 200 and body["ready"] is True
    assert "witness_quorum" not in body["checks"]  # the web tier's readiness is not the witnesses' business
    status = json.loads(client.get("/status", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content)
    assert status["checks"]["witness_quorum"] == "degraded" and status["degraded"] == ["witness_quorum"]
    assert status["status"] == "degraded"


def test_status_without_witnesses_has_no_quorum_check(settings: Any, client: Client) -> None:
    settings.METRICS_TOKEN = TOKEN
    settings.LEDGER_WITNESSES = []
    body = json.loads(client.get("/status", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content)
    assert "witness_quorum" not in body["checks"] and body["degraded"] == []


def test_metrics_show_lag_and_refusals(witnesses: Any, settings: Any, client: Client) -> None:
    settings.METRICS_TOKEN = TOKEN
    honest, impostor = witnesses("honest", "wrong_key")
    settings.LEDGER_WITNESS_DEADLINE = 0.01
    size = checkpoint_of(3).tree_size
    checkpoint_witness(checkpoint_id=Checkpoint.objects.get(tree_size=size).pk)
    text = scrape(client)
    assert value(text, "governance_ledger_witness_quorum_ok") == 0
    assert value(text, "governance_ledger_witness_quorum_lag_entries") == size
    assert value(text, "governance_ledger_witness_cosigned_size", witness=honest.name) == size
    assert value(text, "governance_ledger_witness_lag_entries", witness=impostor.name) == size
    assert value(text, "governance_ledger_witness_refusals_total", witness=impostor.name) == 1
    assert value(text, "governance_ledger_witness_refusals_total", witness=honest.name) == 0


def test_the_dashboard_shows_each_witness(witnesses: Any, settings: Any, client: Client) -> None:
    from tests.personas import make_user

    honest, impostor = witnesses("honest", "wrong_key")
    settings.LEDGER_WITNESS_DEADLINE = 0.01
    checkpoint_witness(checkpoint_id=checkpoint_of(3).pk)
    from access import roles

    client.force_login(make_user("infosec-w", roles.INFOSEC))
    page = client.get("/console/").content.decode()
    assert "QUORUM OVERDUE" in page and honest.name in page and impostor.name in page
    assert "no cosignature by its configured key" in page


# --- attacks --------------------------------------------------------------------------------------------


def test_a_forged_cosignature_row_is_rejected_by_verification(witnesses: Any, settings: Any) -> None:
    """A database owner inserts a cosignature line the witness never made: verifiers reject the note."""
    w1, w2 = witnesses("honest", "honest")
    checkpoint = checkpoint_of(4)
    witness = configured_witnesses()[1]
    # Cosign only with w1; then forge w2's line (its name and key ID, a made-up signature).
    settings.LEDGER_WITNESSES = settings.LEDGER_WITNESSES[:1]
    settings.LEDGER_WITNESS_QUORUM = 1
    checkpoint_witness(checkpoint_id=checkpoint.pk)
    blob = witness.cosigner.key_id + (1_700_000_000).to_bytes(8, "big") + bytes(64)
    WitnessCosignature.objects.create(
        checkpoint=checkpoint, witness=w2.name, key_id=witness.cosigner.key_id.hex(), timestamp=1_700_000_000,
        line=f"\u2014 {w2.name} {base64.b64encode(blob).decode()}\n", received_at=timezone.now(),
    )
    settings.LEDGER_WITNESSES = [{"name": w.name, "url": w.url, "verifier_key": w.verifier_key} for w in (w1, w2)]
    settings.LEDGER_WITNESS_QUORUM = 2
    with pytest.raises(NoteError, match="does not verify"):
        verify_cosignatures(published_note(checkpoint), [w.cosigner for w in configured_witnesses()])
    status = witness_quorum_check(now=later(settings), resubmit=False)
    assert not status.ok and status.quorum_size == 0  # the forged line never counts towards the quorum


def test_cosignature_rows_are_append_only(witnesses: Any) -> None:
    from django.db import DatabaseError, transaction

    witnesses("honest")
    checkpoint_witness(checkpoint_id=checkpoint_of(2).pk)
    row = WitnessCosignature.objects.get()
    for attempt in (lambda: WitnessCosignature.objects.filter(pk=row.pk).update(line="x\n"),
                    lambda: WitnessCosignature.objects.filter(pk=row.pk).delete()):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            attempt()
    assert WitnessCosignature.objects.get().line == row.line


def test_the_celery_tasks_run_the_services(witnesses: Any, settings: Any) -> None:
    from audit.tasks import witness_checkpoint
    from audit.tasks import witness_quorum_check as check_task

    w1, w2 = witnesses("honest", "honest")
    checkpoint = checkpoint_of(2)
    assert sorted(witness_checkpoint.apply(args=[checkpoint.pk]).get()) == sorted([w1.name, w2.name])
    assert check_task.apply().get() is True
