"""tests/witnesses.py: the four behaviours the log side's tests rely on, each shown doing what it claims."""
from __future__ import annotations

import time

import pytest

from audit.cosignature import Cosigner, verify_cosignatures
from tests.audit.witness.logs import TestLog
from tests.witnesses import SLOW_SECONDS, start_witness


@pytest.fixture
def log() -> TestLog:
    return TestLog("log.example/helper").grow(20)


def test_honest_witness_attributes_and_context_manager(tmp_path, log):
    with start_witness(tmp_path, log_vkeys=[log.vkey], name="w.example/honest") as w:
        assert w.url.startswith("http://127.0.0.1:") and not w.url.endswith("/")
        assert w.name == "w.example/honest" and Cosigner.parse(w.verifier_key).name == w.name
        assert w.state_path.parent.is_dir()
        status, _, line = w.add_checkpoint(log.request(0, 5))
        assert status == 200
        assert verify_cosignatures(log.note(5) + line.decode(), [Cosigner.parse(w.verifier_key)])
        process = w.process
    assert process is not None and process.poll() is not None  # stopped on exit


def test_two_witnesses_via_the_fixture_are_independent(witness_factory, log):
    w1 = witness_factory(log_vkeys=[log.vkey], name="w1.test")
    w2 = witness_factory(log_vkeys=[log.vkey], name="w2.test")
    assert w1.url != w2.url and w1.verifier_key != w2.verifier_key and w1.state_path != w2.state_path
    assert w1.add_checkpoint(log.request(0, 5))[0] == 200
    assert w2.add_checkpoint(log.request(0, 9))[0] == 200
    assert w1.add_checkpoint(log.request(0, 9)) == (409, "text/x.tlog.size", b"5\n")


def test_wrong_key_witness_cosignature_does_not_verify_under_its_advertised_key(witness_factory, log):
    w = witness_factory(log_vkeys=[log.vkey], behaviour="wrong_key")
    status, _, line = w.add_checkpoint(log.request(0, 5))
    assert status == 200 and line.decode().startswith(f"\u2014 {w.name} ")
    assert verify_cosignatures(log.note(5) + line.decode(), [Cosigner.parse(w.verifier_key)]) == []


def test_lying_size_witness_claims_sizes_it_never_cosigned(witness_factory, log):
    w = witness_factory(log_vkeys=[log.vkey], behaviour="lying_size")
    assert w.add_checkpoint(log.request(0, 5)) == (409, "text/x.tlog.size", b"1\n")
    assert w.add_checkpoint(log.request(1, 5)) == (409, "text/x.tlog.size", b"2\n")
    assert w.latest(log.origin)[0] == 404  # it never cosigned anything


def test_slow_witness_answers_after_3_seconds(witness_factory, log):
    w = witness_factory(log_vkeys=[log.vkey], behaviour="slow")
    started = time.monotonic()
    status, _, _ = w.add_checkpoint(log.request(0, 5))
    assert status == 200 and time.monotonic() - started >= SLOW_SECONDS


def test_restart_keeps_url_key_and_state(witness_factory, log):
    w = witness_factory(log_vkeys=[log.vkey])
    assert w.add_checkpoint(log.request(0, 5))[0] == 200
    url, vkey = w.url, w.verifier_key
    w.restart()
    assert (w.url, w.verifier_key) == (url, vkey)
    assert w.add_checkpoint(log.request(5, 7))[0] == 200
    assert verify_cosignatures(w.latest(log.origin)[2].decode(), [Cosigner.parse(vkey)])


def test_unknown_behaviour_is_refused(tmp_path, log):
    with pytest.raises(ValueError, match="unknown witness behaviour"):
        start_witness(tmp_path, log_vkeys=[log.vkey], behaviour="sneaky")
