"""The witness's decision and state in-process: what a failed save leaves, and logs dropped then re-added."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.witness.server import Witness
from audit.witness.state import StateError, WitnessState
from tests.witness.logs import TestLog


def _witness(tmp_path, *logs: TestLog, key: Ed25519PrivateKey | None = None) -> Witness:
    return Witness(name="w.example/1", key=key or Ed25519PrivateKey.generate(),
                   log_vkeys=[log.vkey for log in logs], state_path=tmp_path / "state.json")


def test_a_failed_save_cosigns_nothing_and_changes_nothing(tmp_path, monkeypatch):
    log = TestLog().grow(20)
    witness = _witness(tmp_path, log)
    assert witness.add_checkpoint(log.request(0, 10)).status == 200
    before = (tmp_path / "state.json").read_bytes()

    def full_disk(logs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(witness.state, "_write", full_disk)
    events = []
    witness._events = events.append
    answer = witness.add_checkpoint(log.request(10, 20))
    assert answer.status == 500 and not answer.body.startswith(b"\xe2\x80\x94")
    assert events[0]["event"] == "state_not_saved"
    assert witness.state.get(log.origin).size == 10  # memory not ahead of the disk
    assert (tmp_path / "state.json").read_bytes() == before
    monkeypatch.undo()
    assert witness.add_checkpoint(log.request(10, 20)).status == 200
    witness.close()


def test_a_dropped_log_keeps_its_state_and_resumes_when_re_added(tmp_path):
    a, b = TestLog("log.example/a").grow(30), TestLog("log.example/b").grow(30)
    key = Ed25519PrivateKey.generate()
    witness = _witness(tmp_path, a, b, key=key)
    assert witness.add_checkpoint(a.request(0, 10)).status == 200
    assert witness.add_checkpoint(b.request(0, 7)).status == 200
    witness.close()
    only_a = _witness(tmp_path, a, key=key)  # b dropped from the configuration
    assert only_a.add_checkpoint(b.request(0, 7)).status == 404
    assert only_a.add_checkpoint(a.request(10, 20)).status == 200
    assert set(json.loads((tmp_path / "state.json").read_text())["logs"]) == {a.origin, b.origin}
    only_a.close()
    again = _witness(tmp_path, a, b, key=key)
    assert again.add_checkpoint(b.request(0, 30)).body == b"7\n"  # not started over
    again.close()


def test_state_of_concurrent_logs_is_grouped_and_complete(tmp_path):
    import threading

    logs = [TestLog(f"log.example/{i}").grow(64) for i in range(6)]
    witness = _witness(tmp_path, *logs)
    barrier = threading.Barrier(len(logs))
    statuses: list[int] = []

    def submit(log: TestLog) -> None:
        barrier.wait()
        old = 0
        for size in (5, 17, 33, 64):
            statuses.append(witness.add_checkpoint(log.request(old, size)).status)
            old = size

    threads = [threading.Thread(target=submit, args=(log,)) for log in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 24
    witness.close()
    reloaded = WitnessState(tmp_path / "state.json", [])
    assert {o: reloaded.get(o).size for o in reloaded.origins()} == {log.origin: 64 for log in logs}
    reloaded.close()


@pytest.mark.parametrize(
    "content",
    [b"", b"[]", b'{"format": "c2sp-tlog-witness-state/1"}',
     b'{"format": "c2sp-tlog-witness-state/1", "logs": {"x": {"size": -1, "root": "", "note": ""}}}',
     b'{"format": "c2sp-tlog-witness-state/1", "logs": {"x": {"size": 1, "root": "AAAA", "note": ""}}}'],
)
def test_malformed_state_files_are_refused(tmp_path, content):
    (tmp_path / "state.json").write_bytes(content)
    with pytest.raises(StateError):
        WitnessState(tmp_path / "state.json", [])
