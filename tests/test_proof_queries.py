"""Proofs read a bounded number of rows whatever the ledger's size: two queries each."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.ledger import Actor, Subject, integrate, record
from audit.merkle import verify_consistency, verify_inclusion
from audit.selectors import consistency_proof, inclusion_proof

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger() -> int:
    for i in range(300):
        record(event_type="ledger.note_added", actor=Actor.system("t"), subject=Subject("s", str(i % 7)),
               payload={"text": str(i)})
    return integrate()


def test_an_inclusion_proof_is_two_queries(ledger: int) -> None:
    with CaptureQueriesContext(connection) as queries:
        proof = inclusion_proof(seq=123, tree_size=ledger)
    assert len(queries) == 2
    assert verify_inclusion(123, ledger, proof.leaf_hash, proof.path, proof.root)


def test_a_consistency_proof_is_two_queries(ledger: int) -> None:
    with CaptureQueriesContext(connection) as queries:
        proof = consistency_proof(old_size=77, new_size=ledger)
    assert len(queries) == 2
    assert verify_consistency(77, ledger, proof.old_root, proof.new_root, proof.path)
