"""/api/v1/ledger/…: entries, proofs, checkpoints and keys; who may read them and every bad input."""
from __future__ import annotations

import base64
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit import ledger, offline_verify, selectors
from audit.canonical import leaf_hash
from audit.ledger import Actor, Subject
from audit.models import Checkpoint
from audit.services import checkpoints
from tests.api.helpers import problem_of
from tests.audit.integration.helpers import fill, note

pytestmark = pytest.mark.django_db

ENTRIES = "/api/v1/ledger/entries"


@pytest.fixture
def history(people) -> Checkpoint:
    """20 notes over 3 subjects, a checkpoint of them, then 5 more notes (integrated, not checkpointed)."""
    fill(20, subjects=3)
    checkpoint = checkpoints.checkpoint_create()
    assert checkpoint is not None
    for i in range(5):
        note(f"late {i}", subject="model/late", actor=Actor.service("pipeline"))
    ledger.integrate()
    return checkpoint


def readers(people, token_for, as_user):
    return {
        "infosec": as_user(people.infosec),
        "auditor": as_user(people.auditor),
        "token": token_for(["ledger:read"]),
    }


def refused(people, approver, token_for, as_user):
    return {
        "owner": (as_user(people.owner), 403),
        "approver": (as_user(approver), 403),
        "outsider": (as_user(people.outsider), 403),
        "steward": (as_user(people.steward), 403),
        "token without ledger:read": (token_for(["events:write"]), 403),
        "anonymous": (as_user(None), 401),
    }


# --- who ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [ENTRIES, f"{ENTRIES}/3", f"{ENTRIES}/3/inclusion-proof",
                                  "/api/v1/ledger/consistency-proof?old_size=2"])
def test_infosec_auditors_and_ledger_tokens_read_entries_and_proofs(history, people, token_for, as_user, path):
    for who, client in readers(people, token_for, as_user).items():
        assert client.get(path).status_code == 200, who


@pytest.mark.parametrize("path", [ENTRIES, f"{ENTRIES}/3", f"{ENTRIES}/3/inclusion-proof",
                                  "/api/v1/ledger/consistency-proof?old_size=2"])
def test_everyone_else_is_refused_entries_and_proofs(history, people, approver, token_for, as_user, path):
    for who, (client, code) in refused(people, approver, token_for, as_user).items():
        response = client.get(path)
        assert response.status_code == code, who
        assert problem_of(response)["status"] == code


def test_a_bad_token_is_401(history, as_user):
    client = as_user(None)
    client.credentials(HTTP_AUTHORIZATION="Bearer mlg_nope_nope")
    assert client.get(ENTRIES).status_code == 401


def test_checkpoint_and_keys_are_published_to_every_signed_in_person(history, people, approver, token_for, as_user):
    for client in (as_user(people.outsider), as_user(approver), token_for(["ledger:read"])):
        assert client.get("/api/v1/ledger/checkpoint").status_code == 200
        assert client.get("/api/v1/ledger/keys").status_code == 200
        assert client.get("/api/v1/ledger/checkpoints").status_code == 200
    for client in (as_user(None), token_for(["events:write"])):
        assert client.get("/api/v1/ledger/checkpoint").status_code in (401, 403)
        assert client.get("/api/v1/ledger/keys").status_code in (401, 403)


# --- the list ----------------------------------------------------------------------------------------------


def all_pages(client, url):
    seqs = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        seqs += [e["seq"] for e in body["results"]]
        url = body["next"]
    return seqs


def test_the_cursor_walks_the_whole_ledger_in_seq_order(history, people, as_user):
    client = as_user(people.auditor)
    seqs = all_pages(client, f"{ENTRIES}?page_size=7")
    assert seqs == list(range(selectors.ledger_size()))
    first = client.get(f"{ENTRIES}?page_size=1").json()["results"][0]
    assert set(first) == {"seq", "timestamp", "event_type", "actor", "subject", "payload", "prev_hash",
                          "subject_prev", "entry_hash", "request_id"}


def test_filters_narrow_the_list(history, people, as_user):
    client = as_user(people.infosec)
    by_actor = client.get(f"{ENTRIES}?actor=service:pipeline").json()["results"]
    assert [e["payload"]["text"] for e in by_actor] == [f"late {i}" for i in range(5)]
    by_subject = client.get(f"{ENTRIES}?subject=model_version:model/1").json()["results"]
    assert by_subject and {e["subject"]["id"] for e in by_subject} == {"model/1"}
    types = client.get(f"{ENTRIES}?event_type=ledger.signing_key_registered&event_type=auth.role_added").json()
    assert {e["event_type"] for e in types["results"]} == {"ledger.signing_key_registered"}
    window = client.get(f"{ENTRIES}?seq_from=3&seq_to=5").json()["results"]
    assert [e["seq"] for e in window] == [3, 4, 5]
    assert client.get(f"{ENTRIES}?subject_type=signing_key").json()["results"][0]["subject"]["type"] == "signing_key"
    assert client.get(f"{ENTRIES}?since=2999-01-01").json()["results"] == []
    assert len(client.get(f"{ENTRIES}?until=2999-01-01&page_size=1000").json()["results"]) > 20


@pytest.mark.parametrize("query, field", [
    ("event_type=nope.never", "event_type"),
    ("since=yesterday", "since"),
    ("until=2026-13-01", "until"),
    ("since=2026-11-02&until=2026-11-01", "until"),
    ("actor=robot:1", "actor"),
    ("actor=user", "actor"),
    ("subject=model_version", "subject"),
    ("seq_from=-1", "seq_from"),
    ("seq_from=abc", "seq_from"),
    ("seq_from=5&seq_to=2", "seq_to"),
    ("cursor=bm9wZQ", "cursor"),
    ("cursor=%%%", "cursor"),
    ("colour=red", "colour"),
])
def test_bad_filters_are_400_naming_the_field(history, people, as_user, query, field):
    response = as_user(people.auditor).get(f"{ENTRIES}?{query}")
    assert response.status_code == 400, response.content
    problem = problem_of(response)
    assert field in {e["field"] for e in problem["errors"]}
    if field == "event_type":
        assert "nope.never" in problem["detail"]


def test_the_list_query_count_does_not_grow_with_the_page_size(history, people, as_user, token_for):
    for client in (as_user(people.auditor), token_for(["ledger:read"])):
        counts = []
        client.get(f"{ENTRIES}?page_size=1")  # warm up: a token's first use is noted once
        for size in (1, 25):
            with CaptureQueriesContext(connection) as ctx:
                assert len(client.get(f"{ENTRIES}?page_size={size}").json()["results"]) == size
            counts.append(len(ctx))
        assert counts[0] == counts[1] <= 5, counts


def test_the_list_query_count_is_bounded(history, people, as_user, django_assert_max_num_queries):
    client = as_user(people.auditor)
    with django_assert_max_num_queries(7):  # +1: the read's ledger.accessed INSERT (PCI 10.2.1.3)
        client.get(f"{ENTRIES}?page_size=1000")


# --- one entry ---------------------------------------------------------------------------------------------


def test_an_entry_carries_its_canonical_body_and_covering_checkpoint(history, people, as_user):
    body = as_user(people.auditor).get(f"{ENTRIES}/4").json()
    canonical = body["canonical_body"].encode()
    assert base64.b64decode(body["canonical_body_base64"]) == canonical
    assert leaf_hash(canonical).hex() == body["entry_hash"] == body["leaf_hash"]
    assert json.loads(canonical)["payload"] == body["payload"]
    assert body["checkpoint"]["tree_size"] == history.tree_size
    assert body["checkpoint_pending"] is None
    late = as_user(people.auditor).get(f"{ENTRIES}/{history.tree_size + 1}").json()
    assert late["checkpoint"] is None
    # not yet covered: a pending state with its expected time, not a failure
    pending = late["checkpoint_pending"]
    assert pending["overdue"] is False and pending["overdue_seconds"] == 0
    assert 0 <= pending["due_in_seconds"] <= 10 and pending["detail"].startswith("pending")


def test_personal_fields_stay_reference_objects(people, as_user):
    ledger.record(event_type="auth.user_registered", actor=Actor.system("tests"),
                  subject=Subject("user", str(people.outsider.pk)),
                  payload={"username": "otto", "email": "otto@example.test"})
    ledger.integrate()
    client = as_user(people.infosec)
    seq = client.get(f"{ENTRIES}?event_type=auth.user_registered").json()["results"][0]["seq"]
    response = client.get(f"{ENTRIES}/{seq}")
    assert b"otto@example.test" not in response.content
    assert isinstance(response.json()["payload"]["email"], dict)


def test_a_seq_not_integrated_is_404(history, people, as_user):
    note("pending")  # recorded, not integrated
    client = as_user(people.auditor)
    size = len(all_pages(client, f"{ENTRIES}?page_size=1000"))
    for path in (f"{ENTRIES}/{size}", f"{ENTRIES}/{size}/inclusion-proof", f"{ENTRIES}/99999"):
        response = client.get(path)
        assert response.status_code == 404
        assert problem_of(response)["code"] == "not_found"


# --- proofs ------------------------------------------------------------------------------------------------


def verifiers():
    from audit.signing import current_verifier_key

    return [offline_verify.Verifier(current_verifier_key())]


def test_an_inclusion_proof_verifies_against_the_signed_checkpoint(history, people, as_user):
    client = as_user(people.auditor)
    for seq in (0, 7, history.tree_size - 1):
        proof = client.get(f"{ENTRIES}/{seq}/inclusion-proof").json()
        assert proof["tree_size"] == history.tree_size  # default: the latest checkpoint
        text, verified, _ = offline_verify.open_note(proof["checkpoint"]["note"], verifiers())
        assert verified
        _, size, root = offline_verify.parse_checkpoint(text)
        entry = client.get(f"{ENTRIES}/{seq}").json()
        leaf = offline_verify.leaf_hash(entry["canonical_body"].encode())
        assert offline_verify.verify_inclusion(seq, size, leaf, [bytes.fromhex(h) for h in proof["audit_path"]],
                                               root)
        assert proof["root_hash"] == root.hex() and proof["leaf_index"] == seq
        # then: a tampered path does not verify
        bad = [bytes(32)] + [bytes.fromhex(h) for h in proof["audit_path"][1:]]
        assert not offline_verify.verify_inclusion(seq, size, leaf, bad, root)


def test_an_inclusion_proof_at_an_explicit_size(history, people, as_user):
    client = as_user(people.auditor)
    proof = client.get(f"{ENTRIES}/3/inclusion-proof?tree_size=10").json()
    assert proof["tree_size"] == 10 and proof["checkpoint"] is None
    leaf = bytes.fromhex(client.get(f"{ENTRIES}/3").json()["entry_hash"])
    assert offline_verify.verify_inclusion(3, 10, leaf, [bytes.fromhex(h) for h in proof["audit_path"]],
                                           bytes.fromhex(proof["root_hash"]))


@pytest.mark.parametrize("query", ["tree_size=3", "tree_size=3000", "tree_size=x", "tree_size=-1", "size=4"])
def test_bad_inclusion_proof_sizes_are_400(history, people, as_user, query):
    response = as_user(people.auditor).get(f"{ENTRIES}/5/inclusion-proof?{query}")
    assert response.status_code == 400
    assert problem_of(response)["errors"]


def test_an_entry_after_the_latest_checkpoint_needs_a_larger_tree_size(history, people, as_user):
    client = as_user(people.auditor)
    seq = history.tree_size + 2
    assert client.get(f"{ENTRIES}/{seq}/inclusion-proof").status_code == 400
    assert client.get(f"{ENTRIES}/{seq}/inclusion-proof?tree_size={seq + 1}").status_code == 200


def test_a_consistency_proof_verifies_between_two_checkpoints(history, people, as_user):
    later = checkpoints.checkpoint_create()
    assert later is not None
    body = as_user(people.auditor).get(
        f"/api/v1/ledger/consistency-proof?old_size={history.tree_size}&new_size={later.tree_size}").json()
    assert body["old_root"] == history.root_hash and body["new_root"] == later.root_hash
    assert body["old_checkpoint"]["id"] == history.pk and body["new_checkpoint"]["id"] == later.pk
    assert offline_verify.verify_consistency(history.tree_size, later.tree_size, bytes.fromhex(body["old_root"]),
                                             bytes.fromhex(body["new_root"]), [bytes.fromhex(h) for h in body["proof"]])


@pytest.mark.parametrize("query", ["", "old_size=0", "old_size=30&new_size=20", "old_size=1&new_size=99999",
                                   "old_size=one", "old_size=1&extra=1"])
def test_bad_consistency_proof_sizes_are_400(history, people, as_user, query):
    response = as_user(people.auditor).get(f"/api/v1/ledger/consistency-proof?{query}")
    assert response.status_code == 400
    problem_of(response)


# --- checkpoints and keys -----------------------------------------------------------------------------------


def test_the_checkpoint_is_a_signed_note_in_plain_text(history, people, as_user):
    response = as_user(people.outsider).get("/api/v1/ledger/checkpoint", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    text, verified, _ = offline_verify.open_note(response.content.decode(), verifiers())
    assert verified
    _, size, root = offline_verify.parse_checkpoint(text)
    assert (size, root.hex()) == (history.tree_size, history.root_hash)


def test_no_checkpoint_yet_is_a_404_problem(people, as_user):
    response = as_user(people.auditor).get("/api/v1/ledger/checkpoint")
    assert response.status_code == 404
    assert problem_of(response)["detail"] == "no checkpoint has been signed yet"


def test_checkpoints_filter_by_size(history, people, as_user):
    client = as_user(people.auditor)
    body = client.get(f"/api/v1/ledger/checkpoints?tree_size={history.tree_size}").json()
    assert [c["id"] for c in body["results"]] == [history.pk]
    assert client.get("/api/v1/ledger/checkpoints?tree_size=1").json()["results"] == []
    assert client.get("/api/v1/ledger/checkpoints?tree_size=big").status_code == 400


def test_keys_list_the_current_and_trusted_verifier_keys(history, people, as_user):
    from audit.signing import current_verifier_key

    body = as_user(people.auditor).get("/api/v1/ledger/keys").json()
    assert body["current"] == current_verifier_key()
    assert body["current"] in body["trusted"]
    assert [k["verifier_key"] for k in body["registered"]] == [current_verifier_key()]


def test_the_ledger_is_read_only(history, people, as_user):
    client = as_user(people.infosec)
    assert client.post(ENTRIES, {}, format="json").status_code == 405
    assert client.delete(f"{ENTRIES}/1").status_code == 405


def test_the_schema_documents_the_ledger_endpoints(as_user):
    paths = as_user(None).get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    for path in ("/api/v1/ledger/entries", "/api/v1/ledger/entries/{seq}/inclusion-proof",
                 "/api/v1/ledger/consistency-proof", "/api/v1/ledger/checkpoint", "/api/v1/ledger/keys"):
        assert path in paths
        assert paths[path]["get"]["tags"] == ["ledger"]
