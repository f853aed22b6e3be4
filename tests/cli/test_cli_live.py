"""``govern`` as a CI job runs it: a subprocess talking HTTP to a live server on 127.0.0.1 with a real token.

The people decide from the test (an approver in a thread, while the CLI waits), the pipeline acts only
through the CLI. Each attack (a bad token, someone else's promotion, a malformed events file) is shown
refused with its exit status and nothing written.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from access import roles
from audit import ledger
from audit.models import PendingEntry
from audit.services.checkpoints import checkpoint_create
from governance.models import Environment, ModelVersion, PromotionRequest
from governance.services import promotions
from tests.access.helpers import grant
from tests.audit.integration.helpers import fill
from tests.cli.conftest import GovernServer, Ran
from tests.factories import MODEL_CARD
from tests.governance.helpers import ensure_defaults, make_deployed
from tests.personas import People

pytestmark = pytest.mark.usefixtures("govern_server")
Run = Callable[..., Ran]


@pytest.fixture
def staging_ready(people: People, res: Any) -> ModelVersion:
    """fraud-detector v2 (owner olga, a model card) live in dev: ready to be promoted to staging."""
    ensure_defaults()  # committing_db tests flush the migrations' rows: put the environments back
    model = res.model
    model.description = MODEL_CARD
    model.save(update_fields=["description"])
    ModelVersion.objects.filter(model=model).update(
        creator="ds-creator", run_id="0123456789abcdef0123456789abcdef", artifact_digest="sha256:" + "ab" * 32,
        metrics={"auc": 0.94})
    v2 = ModelVersion.objects.get(model=model, version=2)
    make_deployed(v2, Environment.objects.get(name="dev"), requested_by=people.owner)
    return v2


@pytest.fixture
def ci_token(pipeline_token: Callable[..., str], people: People, staging_ready: ModelVersion) -> str:
    """The CI pipeline's token: promotions read/write, a model-owner service account that may see the model."""
    token = pipeline_token(["promotions:read", "promotions:write"], roles=[roles.MODEL_OWNER])
    from access.models import ServiceAccount

    grant(people.owner, ServiceAccount.objects.get(name="pipeline").user, staging_ready.model, "view_metadata")
    return token


def _decide_when_requested(server: GovernServer, decide: Callable[[PromotionRequest], Any]) -> threading.Thread:
    """A person deciding from another thread once the CLI's request exists (under the server's lock)."""

    def work() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with server.lock:
                request = PromotionRequest.objects.filter(environment__name="staging").first()
                if request is not None:
                    decide(request)
                    return
            time.sleep(0.1)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


PROMOTE = ("promote", "fraud-detector", "2", "staging", "--reason", "CI build 7: auc 0.94")


# --- promote and wait ----------------------------------------------------------------------------------


def test_promote_waits_for_the_approver_and_exits_0_once_deployed(
    run_govern: Run, ci_token: str, govern_server: GovernServer, people: People, fake_registry: Any
) -> None:
    decider = _decide_when_requested(govern_server, lambda r: promotions.promotion_approve(
        actor=people.approver, promotion=r, comment="metrics reviewed"))
    ran = run_govern(*PROMOTE, "--wait", "--poll", "0.2", "--timeout", "30", token=ci_token)
    decider.join(5)
    assert ran.code == 0, ran.stderr
    promotion = PromotionRequest.objects.get(environment__name="staging")
    assert ran.stdout.strip() == str(promotion.pk)
    assert promotion.state == "deployed" and "deployed" in ran.stderr
    assert ci_token not in ran.stdout + ran.stderr


def test_a_retried_ci_job_gets_the_same_promotion_not_a_second_one(run_govern: Run, ci_token: str) -> None:
    ci = {"GITHUB_REPOSITORY": "acme/fraud", "GITHUB_RUN_ID": "9911"}
    first = run_govern(*PROMOTE, token=ci_token, env=ci)
    again = run_govern(*PROMOTE, token=ci_token, env=ci)
    other_run = run_govern(*PROMOTE, token=ci_token, env={**ci, "GITHUB_RUN_ID": "9912"})
    assert (first.code, again.code) == (0, 0), first.stderr + again.stderr
    assert first.stdout == again.stdout and "already requested" in again.stderr
    assert PromotionRequest.objects.filter(environment__name="staging").count() == 1
    # Another run is another request, not a replay: the server refuses a second open one (400 → exit 2).
    assert other_run.code == 2 and "already has an open promotion request" in other_run.stderr


def test_rejected_exits_10_with_the_document(run_govern: Run, ci_token: str, govern_server: GovernServer,
                                            people: People) -> None:
    decider = _decide_when_requested(govern_server, lambda r: promotions.promotion_reject(
        actor=people.approver, promotion=r, comment="precision regressed on EU cards"))
    ran = run_govern(*PROMOTE, "--wait", "--poll", "0.2", "--timeout", "30", "--json", token=ci_token)
    decider.join(5)
    assert ran.code == 10, ran.stderr
    assert json.loads(ran.stdout)["state"] == "rejected"


def test_nobody_deciding_is_a_timeout_exit_20_still_pending(run_govern: Run, ci_token: str) -> None:
    ran = run_govern(*PROMOTE, "--wait", "--poll", "0.2", "--timeout", "1", token=ci_token)
    assert ran.code == 20, ran.stderr
    assert "still pending" in ran.stderr
    assert PromotionRequest.objects.get(environment__name="staging").state == "pending"


def test_status_shows_the_state_and_the_approvals_still_missing(run_govern: Run, ci_token: str) -> None:
    created = run_govern(*PROMOTE, token=ci_token)
    ran = run_govern("status", created.stdout.strip(), token=ci_token)
    assert ran.code == 0, ran.stderr
    assert "state: pending" in ran.stdout and "missing:" in ran.stdout and "approver" in ran.stdout


# --- attacks: bad token, invisible things, missing scope -----------------------------------------------


def test_a_bad_token_exits_3_and_nothing_is_requested(run_govern: Run, ci_token: str) -> None:
    before = PendingEntry.objects.count()
    forged = "mlg_" + "x" * 40
    ran = run_govern(*PROMOTE, token=forged)
    assert ran.code == 3, ran.stderr
    assert "invalid, expired or revoked API token" in ran.stderr and forged not in ran.stderr
    assert not PromotionRequest.objects.filter(environment__name="staging").exists()
    # auth.token_rejected-like entries aside, no promotion entry was written
    assert not PendingEntry.objects.filter(event_type__startswith="promotion.").exists()
    assert PendingEntry.objects.count() - before <= 1


def test_a_token_without_the_write_scope_exits_3(run_govern: Run, pipeline_token: Callable[..., str],
                                                 ci_token: str) -> None:
    read_only = pipeline_token(["promotions:read"])
    ran = run_govern(*PROMOTE, token=read_only)
    assert ran.code == 3 and "scope" in ran.stderr
    assert not PromotionRequest.objects.filter(environment__name="staging").exists()


def test_a_model_the_token_may_not_see_exits_4(run_govern: Run, pipeline_token: Callable[..., str],
                                               staging_ready: ModelVersion) -> None:
    blind = pipeline_token(["promotions:read", "promotions:write"], roles=[roles.MODEL_OWNER], account_name="blind")
    ran = run_govern(*PROMOTE, token=blind)
    assert ran.code == 4, ran.stderr
    assert "may not see it" in ran.stderr
    assert not PromotionRequest.objects.filter(environment__name="staging").exists()


def test_someone_elses_promotion_is_not_found_exit_4(run_govern: Run, pipeline_token: Callable[..., str],
                                                     staging_ready: ModelVersion, people: People) -> None:
    theirs = promotions.promotion_request(actor=people.owner, version=staging_ready,
                                          environment=Environment.objects.get(name="staging"), reason="theirs")
    blind = pipeline_token(["promotions:read", "promotions:write"], account_name="blind")
    status = run_govern("status", str(theirs.pk), token=blind)
    progress = run_govern("rollout", "progress", str(theirs.pk), "--status", "failed", token=blind)
    assert (status.code, progress.code) == (4, 4), status.stderr + progress.stderr
    theirs.refresh_from_db()
    assert theirs.state == "pending"


# --- rollouts --------------------------------------------------------------------------------------------


def test_a_canary_waits_until_the_rollout_starts_then_the_pipeline_reports_it_done(
    run_govern: Run, ci_token: str, govern_server: GovernServer, people: People, staging_ready: ModelVersion,
    fake_registry: Any
) -> None:
    decider = _decide_when_requested(govern_server, lambda r: promotions.promotion_approve(
        actor=people.approver, promotion=r, comment="ok"))
    ran = run_govern(*PROMOTE, "--strategy", "canary", "--canary-steps", "10,50,100", "--wait", "--poll", "0.2",
                     "--timeout", "30", token=ci_token)
    decider.join(5)
    assert ran.code == 0, ran.stderr
    promotion_id = ran.stdout.strip()
    assert PromotionRequest.objects.get(pk=promotion_id).state == "deploying"
    step = run_govern("rollout", "progress", promotion_id, "--status", "step", "--percent", "50",
                      "--detail", "error rate 0.1%", token=ci_token)
    assert step.code == 0, step.stderr
    assert "50% traffic" in step.stdout
    done = run_govern("rollout", "progress", promotion_id, "--status", "completed", token=ci_token)
    assert done.code == 0, done.stderr
    assert PromotionRequest.objects.get(pk=promotion_id).state == "deployed"
    again = run_govern("rollout", "progress", promotion_id, "--status", "completed", token=ci_token)
    assert again.code == 6 and "not a canary or shadow rollout in progress" in again.stderr


# --- runtime events --------------------------------------------------------------------------------------


def _drift(**overrides: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": "monitoring.data_drift_detected",
            "occurred_at": "2026-11-29T09:29:58Z", "model": "fraud-detector", "version": 2, "environment": "dev",
            "metric": "psi", "value": 0.31, "threshold": 0.2, **overrides}


@pytest.fixture
def events_token(pipeline_token: Callable[..., str], people: People, staging_ready: ModelVersion) -> str:
    token = pipeline_token(["events:write"], account_name="monitor")
    from access.models import ServiceAccount

    grant(people.owner, ServiceAccount.objects.get(name="monitor").user, staging_ready.model, "view_metadata")
    return token


def test_events_from_json_lines_are_recorded_once_even_when_posted_twice(
    run_govern: Run, events_token: str, tmp_path: Path
) -> None:
    events = [_drift() for _ in range(5)]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n\n")
    first = run_govern("events", "post", str(path), "--batch-size", "2", token=events_token)
    assert first.code == 0, first.stderr
    assert first.stdout.strip() == "5 recorded, 0 already recorded, 0 refused (of 5)"
    again = run_govern("events", "post", "-", "--json", token=events_token, stdin=json.dumps(events, indent=1))
    assert again.code == 0, again.stderr
    assert json.loads(again.stdout) == {"recorded": 0, "already_recorded": 5, "refused": 0, "total": 5}
    assert PendingEntry.objects.filter(event_type="monitoring.data_drift_detected").count() == 5


@pytest.mark.parametrize(("content", "line"), [
    ("{good}\nnot json\n{good}\n", 2),
    ("{good}\n\n[1, 2]\n", 3),
    ("{good}\n{\"type\": \"monitoring.data_drift_detected\"}\n", 2),
    ("[\n  {good},\n  {good},\n  7\n]\n", 4),
    ("[\n  {good},\n  {good}\n", 4),
])
def test_a_malformed_events_file_exits_2_naming_the_line_and_posts_nothing(
    run_govern: Run, events_token: str, tmp_path: Path, content: str, line: int
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(content.replace("{good}", json.dumps(_drift())))
    ran = run_govern("events", "post", str(path), "--batch-size", "1", token=events_token)
    assert ran.code == 2, ran.stderr
    assert f"line {line}:" in ran.stderr
    assert not PendingEntry.objects.filter(event_type="monitoring.data_drift_detected").exists()


def test_a_refused_batch_exits_7_naming_the_line_and_the_other_batches_are_recorded(
    run_govern: Run, events_token: str, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    lines = [_drift(), _drift(model="credit-limit"), _drift()]
    path.write_text("\n".join(json.dumps(e) for e in lines))
    ran = run_govern("events", "post", str(path), "--batch-size", "1", token=events_token)
    assert ran.code == 7, ran.stderr
    assert ran.stdout.strip() == "2 recorded, 0 already recorded, 1 refused (of 3)"
    assert f"{path} line 2: version: no model version credit-limit/2" in ran.stderr
    assert PendingEntry.objects.filter(event_type="monitoring.data_drift_detected").count() == 2


# --- exports: create, download, verify -------------------------------------------------------------------


@pytest.fixture
def auditor_token(pipeline_token: Callable[..., str], people: People, isolated_key: Path) -> str:
    fill(8, subjects=2)
    checkpoint_create()
    return pipeline_token(["exports:read"], roles=[roles.AUDITOR], account_name="audit-bot")


def test_an_export_round_trip_verifies_only_against_trusted_keys(
    run_govern: Run, auditor_token: str, tmp_path: Path
) -> None:
    bundle = tmp_path / "ledger.zip"
    created = run_govern("export", "create", "--wait", "--poll", "0.2", "--timeout", "60", "-o", str(bundle),
                         token=auditor_token)
    assert created.code == 0, created.stderr
    assert bundle.is_file() and "sha256" in created.stderr
    again = tmp_path / "again.zip"
    downloaded = run_govern("export", "download", created.stdout.strip(), "-o", str(again), token=auditor_token)
    assert downloaded.code == 0, downloaded.stderr
    assert again.read_bytes() == bundle.read_bytes()

    unanchored = run_govern("export", "verify", str(bundle), token=None)
    assert unanchored.code == 3, unanchored.stdout + unanchored.stderr
    keys = tmp_path / "trusted-keys.txt"
    with keys.open("w") as fh:
        call_command("ledger_keys", stdout=fh)
    verified = run_govern("export", "verify", str(bundle), "--trusted-keys-file", str(keys), token=None)
    assert verified.code == 0, verified.stdout + verified.stderr
    assert "VERIFIED" in verified.stdout

    tampered = tmp_path / "tampered.zip"
    tampered.write_bytes(bundle.read_bytes()[:-100])
    broken = run_govern("export", "verify", str(tampered), "--trusted-keys-file", str(keys), token=None)
    assert broken.code in (1, 2) and broken.code != 0


def test_an_export_by_someone_without_the_role_exits_3_and_records_nothing(
    run_govern: Run, pipeline_token: Callable[..., str], people: People, isolated_key: Path
) -> None:
    fill(2)
    token = pipeline_token(["exports:read"], account_name="not-an-auditor")
    before = PendingEntry.objects.filter(event_type="ledger.exported").count()
    ran = run_govern("export", "create", token=token)
    assert ran.code == 3 and "only InfoSec and auditors" in ran.stderr
    assert PendingEntry.objects.filter(event_type="ledger.exported").count() == before


# --- deployment receipts -------------------------------------------------------------------------------


def test_a_receipt_is_fetched_once_a_checkpoint_covers_it_and_verifies_offline(
    run_govern: Run, ci_token: str, govern_server: GovernServer, people: People, fake_registry: Any,
    isolated_key: Path, tmp_path: Path
) -> None:
    decider = _decide_when_requested(govern_server, lambda r: promotions.promotion_approve(
        actor=people.approver, promotion=r, comment="ok"))
    promoted = run_govern(*PROMOTE, "--wait", "--poll", "0.2", "--timeout", "30", token=ci_token)
    decider.join(5)
    assert promoted.code == 0, promoted.stderr
    promotion_id = promoted.stdout.strip()

    def sign_a_checkpoint_soon() -> None:
        time.sleep(1.0)
        with govern_server.lock:
            ledger.integrate()
            checkpoint_create()

    signer = threading.Thread(target=sign_a_checkpoint_soon, daemon=True)
    signer.start()
    receipt = tmp_path / "receipt.json"
    got = run_govern("receipt", "get", promotion_id, "-o", str(receipt), "--poll", "0.2", "--timeout", "30",
                     token=ci_token)
    signer.join(5)
    assert got.code == 0, got.stderr
    assert "receipt pending" in got.stderr and json.loads(receipt.read_text())["format"] == "deployment-receipt/v1"

    keys = tmp_path / "trusted-keys.txt"
    with keys.open("w") as fh:
        call_command("ledger_keys", stdout=fh)
    digest = ModelVersion.objects.get(model__name="fraud-detector", version=2).artifact_digest
    ok = run_govern("receipt", "verify", str(receipt), "--trusted-keys-file", str(keys), "--model", "fraud-detector",
                    "--version", "2", "--environment", "staging", "--artifact", digest, token=None)
    assert ok.code == 0, ok.stderr
    assert ok.stdout.startswith("receipt OK: fraud-detector v2 in staging")
    # Presented for another deployment, or with no trust anchor: refused, never OK.
    production = run_govern("receipt", "verify", str(receipt), "--trusted-keys-file", str(keys), "--environment",
                            "production", token=None)
    assert production.code == 1 and "expected 'production'" in production.stderr
    empty = tmp_path / "no-keys.txt"
    empty.write_text("# nothing trusted\n")
    unanchored = run_govern("receipt", "verify", str(receipt), "--trusted-keys-file", str(empty), token=None)
    assert unanchored.code == 2 and "no trusted key" in unanchored.stderr
    doc = json.loads(receipt.read_text())
    doc["note"] = doc["note"].replace("environment staging", "environment production")
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    assert run_govern("receipt", "verify", str(forged), "--trusted-keys-file", str(keys), token=None).code == 1

    printed = run_govern("receipt", "print", str(receipt), token=None)
    assert printed.code == 0 and "environment" in printed.stdout and "not verified" in printed.stdout


def test_a_receipt_of_a_promotion_not_yet_deployed_is_not_found_exit_4(run_govern: Run, ci_token: str) -> None:
    created = run_govern(*PROMOTE, token=ci_token)
    ran = run_govern("receipt", "get", created.stdout.strip(), "--timeout", "1", token=ci_token)
    assert ran.code == 4, ran.stderr


# --- attestations --------------------------------------------------------------------------------------


def test_a_pipeline_attests_a_version_once(run_govern: Run, pipeline_token: Callable[..., str], people: People,
                                           staging_ready: ModelVersion, tmp_path: Path) -> None:
    from access.models import ServiceAccount
    from governance.models import Attestation
    from tests import attestations as att

    token = pipeline_token(["attestations:write"], account_name="ci-attest")
    grant(people.owner, ServiceAccount.objects.get(name="ci-attest").user, staging_ready.model, "view_metadata")
    document = tmp_path / "provenance.dsse.json"
    document.write_bytes(att.attest(staging_ready.artifact_digest, att.Key()))
    first = run_govern("attest", str(document), "--model", "fraud-detector", "--version", "2", "--json",
                       token=token)
    assert first.code == 0, first.stderr
    answer = json.loads(first.stdout)
    assert answer["kind"] == "dsse" and answer["binds_version"] is True
    again = run_govern("attest", str(document), "--model", "fraud-detector", "--version", "2", token=token)
    assert again.code == 0 and "already stored" in again.stderr
    assert Attestation.objects.count() == 1
    blind = pipeline_token(["attestations:write"], account_name="blind")
    unseen = run_govern("attest", str(document), "--model", "fraud-detector", "--version", "2", token=blind)
    assert unseen.code == 4 and Attestation.objects.count() == 1
    not_json = tmp_path / "notes.txt"
    not_json.write_text("signed, trust me")
    assert run_govern("attest", str(not_json), "--model", "fraud-detector", "--version", "2",
                      token=token).code == 2
