"""Signed deployment receipts (issue #20 §1): issued once when a promotion's alias is applied, served with the
approval entry's inclusion proof, and verified offline by ``audit/receipt_verify.py``, which refuses every
forgery below. The registry is the fake one (tests/governance/helpers.py) except in the end-to-end test,
which runs the real MLflow registry and the verifier as a separate process.
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.contrib.auth.models import User

from audit.cosignature import cosignature_line, cosigner_verifier_key
from audit.ledger import Actor, integrate
from audit.models import Entry
from audit.note import public_bytes, sign_note, verifier_key
from audit.receipt_verify import ReceiptError, verify_receipt
from audit.services.checkpoints import checkpoint_create
from audit.signing import key_lifetimes
from governance.models import DeploymentReceipt, Environment, ModelVersion, PromotionRequest
from governance.services import break_glass, deployments, promotions
from tests.console.helpers import client_for
from tests.factories import ModelVersionFactory
from tests.governance.helpers import FakeRegistry, make_deployed, snapshot
from tests.personas import People

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
State = PromotionRequest.State
Capture = Callable[..., Any]
Client = Callable[[User | None], Any]


def trusted() -> list[str]:
    return [lifetime.line() for lifetime in key_lifetimes()]


def receipts_of(promotion: PromotionRequest) -> list[Entry]:
    integrate()
    return list(Entry.objects.filter(event_type="promotion.receipt_issued", subject_id=str(promotion.pk)))


def to_staging(people: People, version: ModelVersion, envs: dict[str, Environment], capture: Capture,
               **kwargs: Any) -> PromotionRequest:
    """Request ``version`` into staging and approve it (one approver), running the deploy task."""
    with capture(execute=True):
        request = promotions.promotion_request(actor=people.requester, version=version,
                                               environment=envs["staging"], reason="better recall", **kwargs)
        promotions.promotion_approve(actor=people.approver, promotion=request, comment="metrics reviewed")
    request.refresh_from_db()
    return request


@pytest.fixture
def v7_in_dev(v7: ModelVersion, envs: dict[str, Environment], people: People) -> ModelVersion:
    make_deployed(v7, envs["dev"], requested_by=people.requester, hours_ago=72)
    return v7


@pytest.fixture
def deployed(v7_in_dev: ModelVersion, envs: dict[str, Environment], people: People, fake_registry: FakeRegistry,
             django_capture_on_commit_callbacks: Capture) -> PromotionRequest:
    """fraud-detector v7 approved into staging and deployed there (its receipt issued), a checkpoint signed."""
    request = to_staging(people, v7_in_dev, envs, django_capture_on_commit_callbacks)
    assert request.state == State.DEPLOYED
    checkpoint_create()
    return request


def fetch(as_user: Client, user: User, promotion: PromotionRequest) -> Any:
    return as_user(user).get(f"/api/v1/promotions/{promotion.pk}/receipt")


@pytest.fixture
def doc(deployed: PromotionRequest, as_user: Client, people: People) -> dict[str, Any]:
    response = fetch(as_user, people.requester, deployed)
    assert response.status_code == 200, response.content
    return dict(response.json())


# --- issuance ------------------------------------------------------------------------------------------------


def test_a_deployed_promotion_has_one_receipt_naming_its_approval_entry(deployed: PromotionRequest,
                                                                       v7: ModelVersion) -> None:
    receipt = DeploymentReceipt.objects.get(promotion=deployed)
    approval = Entry.objects.get(event_type="promotion.approved", subject_id=str(deployed.pk))
    text = receipt.note.split("\n\n")[0].split("\n")
    assert text[1:] == [
        "deployment-receipt v1", f"promotion {deployed.pk}", "model fraud-detector", "version 7",
        "environment staging", f"artifact {v7.artifact_digest}", "approval-event promotion.approved",
        f"approval-seq {approval.seq}", f"approval-hash {approval.entry_hash}", text[10], text[11]]
    assert int(text[10].removeprefix("tree-size ")) > approval.seq
    # the receipt is itself on the record: its entry carries the note's SHA-256, not the note
    [entry] = receipts_of(deployed)
    assert entry.payload["note_sha256"] == receipt.note_sha256 and "note" not in entry.payload
    assert entry.payload["approval_seq"] == approval.seq and entry.actor == {"type": "system", "id": "deployer"}


def test_the_receipt_verifies_offline_and_says_what_it_claims(doc: dict[str, Any], deployed: PromotionRequest,
                                                              v7: ModelVersion) -> None:
    claims = verify_receipt(doc, trusted_keys=trusted(), expect={
        "model": "fraud-detector", "version": "7", "environment": "staging", "artifact": v7.artifact_digest})
    assert (claims.promotion, claims.model, claims.version, claims.environment) == (
        deployed.pk, "fraud-detector", 7, "staging")
    assert claims.approval_event == "promotion.approved" and claims.witnesses == 0
    assert doc["inclusion_proof"]["leaf_index"] == claims.approval_seq == doc["entry"]["seq"]


def test_a_break_glass_release_s_receipt_names_its_break_glass_entry(
    v7_in_dev: ModelVersion, envs: dict[str, Environment], people: People, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture, as_user: Client,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        request = break_glass.promotion_break_glass(actor=people.breakglass, version=v7_in_dev,
                                                    environment=envs["staging"], justification="fraud spike")
    request.refresh_from_db()
    assert request.state == State.DEPLOYED
    checkpoint_create()
    document = fetch(as_user, people.breakglass, request).json()
    assert "\napproval-event promotion.break_glass\n" in document["note"]
    claims = verify_receipt(document, trusted_keys=trusted())
    assert claims.approval_event == "promotion.break_glass" == document["entry"]["event_type"]


def test_an_unapproved_promotion_has_no_receipt(
    v7_in_dev: ModelVersion, envs: dict[str, Environment], people: People, as_user: Client,
) -> None:
    pending = promotions.promotion_request(actor=people.requester, version=v7_in_dev, environment=envs["staging"],
                                           reason="better recall")
    checkpoint_create()
    response = fetch(as_user, people.requester, pending)
    assert response.status_code == 404 and "has no deployment receipt: it is pending" in response.json()["detail"]
    assert not DeploymentReceipt.objects.exists() and receipts_of(pending) == []


def test_a_second_alias_application_issues_no_second_receipt(
    v7_in_dev: ModelVersion, envs: dict[str, Environment], people: People, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    # a canary: the candidate alias issues the receipt...
    request = to_staging(people, v7_in_dev, envs, django_capture_on_commit_callbacks, strategy="canary",
                         canary_steps=[50, 100])
    assert request.state == State.DEPLOYING
    first = DeploymentReceipt.objects.get(promotion=request)
    # ...and the main alias, when the rollout completes, issues none
    with django_capture_on_commit_callbacks(execute=True):
        deployments.promotion_report_progress(actor=Actor.service("seldon"), promotion=request,
                                              status="completed")
    request.refresh_from_db()
    assert request.state == State.DEPLOYED
    assert list(DeploymentReceipt.objects.filter(promotion=request)) == [first]
    assert DeploymentReceipt.objects.get(promotion=request).note == first.note
    assert len(receipts_of(request)) == 1


def test_a_receipt_that_cannot_be_issued_is_refused_on_the_record_and_the_deployment_stands(
    v7_in_dev: ModelVersion, envs: dict[str, Environment], people: People, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture, as_user: Client,
) -> None:
    # given a version whose stored digest is not one of ours (a row edited behind our back)
    ModelVersion.objects.filter(pk=v7_in_dev.pk).update(artifact_digest="md5:0123")
    request = to_staging(people, v7_in_dev, envs, django_capture_on_commit_callbacks)
    assert request.state == State.DEPLOYED
    assert not DeploymentReceipt.objects.exists() and receipts_of(request) == []
    [refusal] = Entry.objects.filter(event_type="promotion.receipt_refused", subject_id=str(request.pk))
    assert "artifact digest" in refusal.payload["reason"]
    assert "none could be issued" in fetch(as_user, people.requester, request).json()["detail"]


def test_a_promotion_without_an_approval_entry_gets_no_receipt(
    v7_in_dev: ModelVersion, envs: dict[str, Environment], people: People,
) -> None:
    # a promotion put into "deploying" behind the services' back has no approval on the record
    request = PromotionRequest.objects.create(version=v7_in_dev, environment=envs["staging"],
                                              requested_by=people.requester, state=State.DEPLOYING, reason="forged")
    deployments.promotion_alias_applied(promotion=request, alias="staging")
    assert not DeploymentReceipt.objects.exists()
    integrate()
    [refusal] = Entry.objects.filter(event_type="promotion.receipt_refused", subject_id=str(request.pk))
    assert refusal.payload["reason"] == f"the ledger has no promotion.approved entry about promotion #{request.pk}"


# --- the API ---------------------------------------------------------------------------------------------------


def test_nobody_who_may_not_see_the_model_gets_the_receipt_and_unknown_looks_the_same(
    deployed: PromotionRequest, as_user: Client, people: People,
) -> None:
    before = snapshot()
    hidden = fetch(as_user, people.outsider, deployed)
    unknown = as_user(people.outsider).get(f"/api/v1/promotions/{deployed.pk + 1000}/receipt")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["detail"] == unknown.json()["detail"] == "not found"
    assert as_user(None).get(f"/api/v1/promotions/{deployed.pk}/receipt").status_code in (401, 403)
    assert snapshot() == before


def test_a_receipt_no_checkpoint_covers_yet_is_409_pending_with_retry_after(
    v7_in_dev: ModelVersion, envs: dict[str, Environment], people: People, fake_registry: FakeRegistry,
    django_capture_on_commit_callbacks: Capture, as_user: Client,
) -> None:
    request = to_staging(people, v7_in_dev, envs, django_capture_on_commit_callbacks)
    response = fetch(as_user, people.requester, request)
    assert response.status_code == 409 and response.json()["code"] == "receipt_pending"
    assert int(response["Retry-After"]) >= 1
    checkpoint_create()
    assert fetch(as_user, people.requester, request).status_code == 200


def test_the_receipt_costs_a_fixed_number_of_queries(
    deployed: PromotionRequest, as_user: Client, people: People, django_assert_max_num_queries: Any,
) -> None:
    client = as_user(people.requester)
    with django_assert_max_num_queries(12):
        assert client.get(f"/api/v1/promotions/{deployed.pk}/receipt").status_code == 200


# --- the attacks on the offline verifier ---------------------------------------------------------------------


def refused(doc: dict[str, Any], match: str, **kwargs: Any) -> None:
    with pytest.raises(ReceiptError, match=match):
        verify_receipt(doc, **{"trusted_keys": trusted(), **kwargs})


def origin_of(doc: dict[str, Any]) -> str:
    return str(doc["note"].split("\n", 1)[0])


def test_a_note_signed_by_another_key_is_refused(doc: dict[str, Any]) -> None:
    forged = copy.deepcopy(doc)
    forged["note"] = sign_note(doc["note"].split("\n\n")[0] + "\n", [(origin_of(doc), Ed25519PrivateKey.generate())])
    refused(forged, "the receipt note does not verify: no signature by a trusted key")


@pytest.mark.parametrize(("line", "edited"), [("version 7", "version 8"), ("environment staging",
                                                                                "environment production")])
def test_a_claim_edited_after_signing_is_refused(doc: dict[str, Any], line: str, edited: str) -> None:
    forged = copy.deepcopy(doc)
    forged["note"] = doc["note"].replace(f"\n{line}\n", f"\n{edited}\n")
    assert forged["note"] != doc["note"]
    refused(forged, "the receipt note does not verify: the signature by .* does not verify")


def test_another_promotion_s_approval_entry_and_proof_are_refused(
    deployed: PromotionRequest, doc: dict[str, Any], fraud: Any, envs: dict[str, Environment], people: People,
    django_capture_on_commit_callbacks: Capture, as_user: Client,
) -> None:
    # another version's genuine receipt (v8, also approved into staging)
    v8 = ModelVersionFactory(model=fraud, version=8)
    make_deployed(v8, envs["dev"], requested_by=people.requester, hours_ago=72)
    other = to_staging(people, v8, envs, django_capture_on_commit_callbacks)
    checkpoint_create()
    other_doc = fetch(as_user, people.requester, other).json()
    fresh = fetch(as_user, people.requester, deployed).json()  # against the same, newest checkpoint
    # the other approval entry, with its own proof, under v7's note
    swapped = {**fresh, "entry": other_doc["entry"], "inclusion_proof": other_doc["inclusion_proof"]}
    refused(swapped, "does not hash to the receipt's approval-hash")
    # v7's entry with the other entry's proof (another index)
    refused({**fresh, "inclusion_proof": other_doc["inclusion_proof"]}, "the inclusion proof is for leaf")
    # the right index, the wrong path
    wrong_path = copy.deepcopy(fresh)
    wrong_path["inclusion_proof"]["hashes"] = other_doc["inclusion_proof"]["hashes"]
    refused(wrong_path, "does not lead from the approval entry to the checkpoint's root")
    # the approval_given entry of the same promotion (a genuine entry, not the approval)
    given = Entry.objects.get(event_type="promotion.approval_given", subject_id=str(deployed.pk))
    refused({**fresh, "entry": given.body()}, "does not hash to the receipt's approval-hash")
    # v7's genuine receipt presented for v8
    verify_receipt(fresh, trusted_keys=trusted())
    refused(fresh, "expected '8'", expect={"version": "8"})


def test_a_proof_for_another_index_or_tree_size_is_refused(doc: dict[str, Any]) -> None:
    shifted = copy.deepcopy(doc)
    shifted["inclusion_proof"]["leaf_index"] += 1
    refused(shifted, "the inclusion proof is for leaf")
    grown = copy.deepcopy(doc)
    grown["inclusion_proof"]["tree_size"] += 1
    refused(grown, "the inclusion proof is for a tree of")


def test_a_checkpoint_of_another_log_or_key_is_refused(doc: dict[str, Any]) -> None:
    body = doc["checkpoint"].split("\n\n")[0] + "\n"
    other_key = Ed25519PrivateKey.generate()
    # another key, same origin: not trusted
    refused({**doc, "checkpoint": sign_note(body, [(origin_of(doc), other_key)])},
            "the checkpoint does not verify: no signature by a trusted key")
    # another log whose key the verifier also trusts: not the receipt's log
    other_log = "other.example/log"
    foreign = sign_note(body.replace(origin_of(doc), other_log, 1), [(other_log, other_key)])
    extra = verifier_key(other_log, public_bytes(other_key.public_key()))
    refused({**doc, "checkpoint": foreign}, "the checkpoint is of log 'other.example/log'",
            trusted_keys=[*trusted(), extra])


def test_witness_quorum_is_enforced(doc: dict[str, Any]) -> None:
    keys = {name: Ed25519PrivateKey.generate() for name in ("witness-a.example", "witness-b.example")}
    vkeys = [cosigner_verifier_key(name, public_bytes(key.public_key())) for name, key in keys.items()]
    text = doc["checkpoint"].split("\n\n")[0] + "\n"
    line = cosignature_line(text, name="witness-a.example", key=keys["witness-a.example"], timestamp=int(time.time()))
    cosigned = {**doc, "checkpoint": doc["checkpoint"] + line}
    # one of two witnesses cosigned: enough for a quorum of 1, not for the default (all) nor 2
    assert verify_receipt(cosigned, trusted_keys=trusted(), witnesses=vkeys, quorum=1).witnesses == 1
    refused(cosigned, "1 valid cosignature", witnesses=vkeys)
    refused(doc, "0 valid cosignature", witnesses=vkeys, quorum=1)
    # a cosignature line of a known witness over another checkpoint is a forgery, not a vote
    other = cosignature_line(text.replace(f"\n{text.split(chr(10))[1]}\n", "\n999999\n", 1),
                             name="witness-b.example", key=keys["witness-b.example"], timestamp=int(time.time()))
    refused({**cosigned, "checkpoint": cosigned["checkpoint"] + other}, "does not verify", witnesses=vkeys, quorum=1)


def test_a_retired_or_not_yet_valid_key_is_refused(doc: dict[str, Any]) -> None:
    [vkey] = [line.split()[0] for line in trusted()]
    size = int(next(line for line in doc["note"].split("\n") if line.startswith("tree-size ")).split()[1])
    refused(doc, "signed only by a key retired before that size", trusted_keys=[f"{vkey} until={size - 1}"])
    refused(doc, "signed only by a key not valid for that size", trusted_keys=[f"{vkey} from={size + 1}"])
    assert verify_receipt(doc, trusted_keys=[f"{vkey} until={size + 1000}"]).tree_size >= size


@pytest.mark.parametrize("claim", [{"version": "8"}, {"environment": "production"}, {"model": "credit-limit"},
                                   {"artifact": "sha256:" + "00" * 32}, {"promotion": "1"}])
def test_a_receipt_presented_for_another_deployment_is_refused(doc: dict[str, Any], claim: dict[str, str]) -> None:
    refused(doc, f"expected {next(iter(claim.values()))!r}", expect=claim)


def test_a_malformed_document_is_refused_not_crashed(doc: dict[str, Any]) -> None:
    refused({**doc, "format": "deployment-receipt/v0"}, "format")
    refused({**doc, "entry": {"seq": "x"}}, "not a ledger entry body")
    refused({**doc, "inclusion_proof": {"leaf_index": 0, "tree_size": 1, "hashes": ["zz"]}}, "64 lowercase hex")
    refused({**doc, "note": 5}, "'note' is missing")
    refused(doc, "no trusted key", trusted_keys=[])


# --- end to end: the real MLflow registry, the verifier as its own process -----------------------------------


def run_verifier(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audit.receipt_verify", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_end_to_end_with_mlflow_and_the_standalone_verifier(
    mlflow_store: Any, envs: dict[str, Environment], tmp_path: Path, as_user: Client,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    from governance.services import registry_mirror
    from tests.governance.mlflow_helpers import catalogued, user

    omar, adam = user("omar", "model-owner"), user("adam", "approver")
    catalogued()
    mlflow_store.register("fraud-detector", mlflow_store.run(metrics={"auc": 0.93}))
    registry_mirror.registry_reconcile()
    version = ModelVersion.objects.get(model__name="fraud-detector", version=1)
    with django_capture_on_commit_callbacks(execute=True):  # dev approves at once; the deploy task runs
        promotions.promotion_request(actor=omar, version=version, environment=envs["dev"], reason="nightly")
    with django_capture_on_commit_callbacks(execute=True):
        request = promotions.promotion_request(actor=omar, version=version, environment=envs["staging"],
                                               reason="to staging")
        promotions.promotion_approve(actor=adam, promotion=request, comment="reviewed")
    request.refresh_from_db()
    assert request.state == State.DEPLOYED and mlflow_store.aliases("fraud-detector")["staging"] == 1
    checkpoint_create()
    version.refresh_from_db()
    assert version.artifact_digest.startswith("sha256:")
    receipt = tmp_path / "receipt.json"
    receipt.write_text(json.dumps(fetch(as_user, omar, request).json()))
    keys = tmp_path / "keys.txt"
    keys.write_text("\n".join(trusted()) + "\n")
    base = [str(receipt), "--trusted-keys-file", str(keys)]

    ok = run_verifier(*base, "--model", "fraud-detector", "--version", "1", "--environment", "staging",
                      "--artifact", version.artifact_digest)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("receipt OK: fraud-detector v1 in staging")
    wrong = run_verifier(*base, "--version", "2")
    assert wrong.returncode == 1 and "expected '2'" in wrong.stderr
    tampered = tmp_path / "tampered.json"
    tampered.write_text(receipt.read_text().replace("environment staging", "environment production"))
    assert run_verifier(str(tampered), "--trusted-keys-file", str(keys)).returncode == 1
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"format": "deployment-receipt/v1", "format": "x"}')  # a duplicate member
    assert run_verifier(str(garbage), "--trusted-keys-file", str(keys)).returncode == 2
    assert run_verifier(str(tmp_path / "missing.json"), "--trusted-keys-file", str(keys)).returncode == 2


# --- the console -------------------------------------------------------------------------------------------------


def test_the_promotion_page_shows_the_receipt_verified_and_offers_it_for_download(
    deployed: PromotionRequest, people: People,
) -> None:
    page = client_for(people.requester).get(f"/console/approvals/requests/{deployed.pk}/")
    html = page.content.decode()
    assert page.status_code == 200 and "Deployment receipt" in html
    assert "verified</span> against the signed checkpoint of tree size" in html
    assert "<dt>approval-event</dt><dd><code>promotion.approved</code></dd>" in html
    download = client_for(people.requester).get(f"/console/approvals/requests/{deployed.pk}/receipt.json")
    assert download.status_code == 200 and download["Content-Disposition"].startswith("attachment;")
    assert verify_receipt(json.loads(download.content), trusted_keys=trusted()).promotion == deployed.pk
    # whoever may not see the promotion gets neither
    assert client_for(people.outsider).get(f"/console/approvals/requests/{deployed.pk}/receipt.json").status_code \
        == 404


def test_the_page_says_when_a_receipt_does_not_verify(deployed: PromotionRequest, people: People) -> None:
    """A note edited in the table (the operator's database) shows as failing, never as verified."""
    receipt = DeploymentReceipt.objects.get(promotion=deployed)
    DeploymentReceipt.objects.filter(pk=receipt.pk).update(note=receipt.note.replace("version 7", "version 9"))
    html = client_for(people.requester).get(f"/console/approvals/requests/{deployed.pk}/").content.decode()
    assert "does not verify</span>" in html and "verified</span>" not in html
