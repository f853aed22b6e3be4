"""The witness's decision and state in-process: what a failed save leaves, and logs dropped then re-added."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.witness.server import Witness
from audit.witness.state import StateError, WitnessState
from tests.audit.witness.logs import TestLog


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


def test_the_cosignature_covers_the_exact_text_the_log_signed(tmp_path):
    """A root in non-canonical base64 decodes to the same hash; the cosignature must still be over the log's bytes."""
    import base64

    from audit.cosignature import Cosigner, add_checkpoint_body, verify_cosignatures
    from audit.note import sign_note

    log = TestLog().grow(5)
    root = log.root(5)
    canonical = base64.b64encode(root).decode()
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".index(canonical[-2])
    odd = canonical[:-2] + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[last | 1] + "="
    assert odd != canonical and base64.b64decode(odd) == root
    note = sign_note(f"{log.origin}\n5\n{odd}\n", [(log.origin, log.key)])
    key = Ed25519PrivateKey.generate()
    witness = _witness(tmp_path, log, key=key)
    try:
        answer = witness.add_checkpoint(add_checkpoint_body(old_size=0, proof=[], note=note))
        assert answer.status == 200
        cosigner = Cosigner.from_key("w.example/1", key.public_key())
        assert len(verify_cosignatures(note + answer.body.decode(), [cosigner])) == 1
    finally:
        witness.close()


def test_cosignature_timestamps_never_go_backwards_even_across_a_restart(tmp_path):
    from audit.cosignature import Cosigner, verify_cosignatures

    log = TestLog().grow(30)
    key = Ed25519PrivateKey.generate()
    cosigner = Cosigner.from_key("w.example/1", key.public_key())
    now = [2_000_000_000.0]
    witness = Witness(name="w.example/1", key=key, log_vkeys=[log.vkey], state_path=tmp_path / "state.json",
                      clock=lambda: now[0])

    def timestamp(old: int, new: int, w: Witness) -> int:
        answer = w.add_checkpoint(log.request(old, new))
        assert answer.status == 200
        return verify_cosignatures(log.note(new) + answer.body.decode(), [cosigner])[0].timestamp

    assert timestamp(0, 10, witness) == 2_000_000_000
    now[0] = 1_000_000_000.0  # the clock steps back
    assert timestamp(10, 20, witness) == 2_000_000_000
    witness.close()
    restarted = Witness(name="w.example/1", key=key, log_vkeys=[log.vkey], state_path=tmp_path / "state.json",
                        clock=lambda: now[0])
    assert timestamp(20, 25, restarted) == 2_000_000_000
    now[0] = 2_000_000_100.0
    assert timestamp(25, 30, restarted) == 2_000_000_100
    restarted.close()
