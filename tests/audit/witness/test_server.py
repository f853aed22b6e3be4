"""The witness process against c2sp.org/tlog-witness, over HTTP on 127.0.0.1 (real processes).

Every status code of add-checkpoint, the attacks a witness exists to stop (two histories shown
to the same witness, a shrunk log) refused with nothing persisted, persistence across a kill -9,
racing requests, and that the process runs without Django.
"""
from __future__ import annotations

import base64
import http.client
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.cosignature import Cosigner, add_checkpoint_body, verify_cosignatures
from audit.note import NoteError, open_note
from tests.audit.witness.logs import TestLog
from tests.witnesses import ROOT, RunningWitness, get, post, witness_env


@pytest.fixture
def log() -> TestLog:
    return TestLog("log.example/test").grow(64)


@pytest.fixture
def witness(witness_factory, log) -> RunningWitness:
    return witness_factory(log_vkeys=[log.vkey], name="witness-1.test")


def _state(witness: RunningWitness) -> bytes | None:
    return witness.state_path.read_bytes() if witness.state_path.exists() else None


def _cosign(witness: RunningWitness, log: TestLog, old: int, new: int) -> str:
    status, _, body = witness.add_checkpoint(log.request(old, new))
    assert status == 200, body
    return body.decode()


def _latest_size(witness: RunningWitness, origin: str) -> int:
    status, _, body = witness.latest(origin)
    assert status == 200, body
    return int(body.decode().split("\n")[1])


# -- 200 ------------------------------------------------------------------------------------------------------


def test_first_checkpoint_is_cosigned_and_the_cosignature_verifies(witness, log):
    note = log.note(10)
    status, content_type, body = witness.add_checkpoint(add_checkpoint_body(old_size=0, proof=[], note=note))
    assert status == 200 and content_type.startswith("text/plain")
    line = body.decode()
    assert line.startswith("\u2014 witness-1.test ") and line.endswith("\n") and line.count("\n") == 1
    cosigned = note + line
    [cosignature] = verify_cosignatures(cosigned, [Cosigner.parse(witness.verifier_key)])
    assert abs(cosignature.timestamp - time.time()) < 60
    # Still a valid signed note for a verifier that only knows the log key: the cosignature is ignored.
    opened = open_note(cosigned, [log.verifier])
    assert (opened.text, opened.unknown_signatures) == (log.checkpoint_text(10), 1)
    # /latest serves exactly that note, cosignature included.
    assert witness.latest(log.origin) == (200, "text/plain; charset=utf-8", cosigned.encode())


def test_the_log_grows_with_consistency_proofs(witness, log):
    _cosign(witness, log, 0, 1)
    for old, new in [(1, 2), (2, 7), (7, 8), (8, 64), (64, 64), (64, 100), (100, 1000)]:
        line = _cosign(witness, log, old, new)
        assert verify_cosignatures(log.note(new) + line, [Cosigner.parse(witness.verifier_key)])
        assert _latest_size(witness, log.origin) == new


def test_a_note_signed_by_several_keys_with_unknown_ones_is_accepted(witness_factory, log):
    other = Ed25519PrivateKey.generate()
    w = witness_factory(log_vkeys=[log.vkey])
    from audit.note import sign_note

    note = sign_note(log.checkpoint_text(5), [("someone.else/key", other), (log.origin, log.key)])
    status, _, _ = w.add_checkpoint(add_checkpoint_body(old_size=0, proof=[], note=note))
    assert status == 200


def test_a_rotated_log_key_is_accepted_when_both_are_configured(witness_factory, log):
    new_key = Ed25519PrivateKey.generate()
    rotated = TestLog(log.origin, new_key)
    w = witness_factory(log_vkeys=[log.vkey, rotated.vkey])
    _cosign(w, log, 0, 10)
    status, _, _ = w.add_checkpoint(log.request(10, 20, key=new_key))
    assert status == 200


def test_an_empty_tree_is_cosigned_only_with_the_empty_root(witness, log):
    assert witness.add_checkpoint(log.request(0, 0))[0] == 200
    from audit.note import CheckpointBody, sign_note

    bogus = sign_note(CheckpointBody(log.origin, 0, b"\x01" * 32).text(), [(log.origin, log.key)])
    assert witness.add_checkpoint(add_checkpoint_body(old_size=0, proof=[], note=bogus))[0] == 422


# -- 404 / 403 ------------------------------------------------------------------------------------------------


def test_unknown_origin_is_404_and_nothing_is_stored(witness, log):
    stranger = TestLog("other.example/log").grow(5)
    status, _, body = witness.add_checkpoint(stranger.request(0, 5))
    assert status == 404 and b"unknown log origin" in body
    assert _state(witness) is None
    assert witness.latest("other.example/log")[0] == 404


def test_checkpoint_signed_by_an_untrusted_key_is_403(witness, log):
    _cosign(witness, log, 0, 10)
    before = _state(witness)
    impostor = Ed25519PrivateKey.generate()  # same origin (key name), another key
    status, _, _ = witness.add_checkpoint(log.request(10, 20, key=impostor))
    assert status == 403
    assert _state(witness) == before and _latest_size(witness, log.origin) == 10


def test_a_bad_signature_by_the_trusted_key_is_403(witness, log):
    note = log.note(10)
    text, sig = note.rsplit("\n\n", 1)
    name, b64 = sig[len("\u2014 ") :].split(" ")
    blob = bytearray(base64.b64decode(b64))
    blob[-1] ^= 1
    forged = f"{text}\n\n\u2014 {name} {base64.b64encode(bytes(blob)).decode()}\n"
    status, _, _ = witness.add_checkpoint(add_checkpoint_body(old_size=0, proof=[], note=forged))
    assert status == 403 and _state(witness) is None


def test_a_note_with_only_a_cosignature_is_403(witness, log):
    # Someone replays another witness's cosignature without the log's signature.
    from audit.cosignature import cosignature_line

    text = log.checkpoint_text(10)
    note = text + "\n" + cosignature_line(text, name="w.other", key=Ed25519PrivateKey.generate(), timestamp=1)
    assert witness.add_checkpoint(add_checkpoint_body(old_size=0, proof=[], note=note))[0] == 403


# -- 400 ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"", b"garbage", b"old 01\n\n", b"old 0\n\nnot a checkpoint\n\n\xe2\x80\x94 a AAAA\n", b"\xff" * 10],
)
def test_malformed_requests_are_400(witness, body):
    status, _, message = witness.add_checkpoint(body)
    assert status == 400 and message.strip()
    assert _state(witness) is None


def test_old_size_larger_than_the_checkpoint_is_400(witness, log):
    _cosign(witness, log, 0, 10)
    body = add_checkpoint_body(old_size=10, proof=[], note=log.note(5))
    status, _, _ = witness.add_checkpoint(body)
    assert status == 400 and _latest_size(witness, log.origin) == 10


def test_request_body_size_is_bounded(witness_factory, log):
    w = witness_factory(log_vkeys=[log.vkey], extra_args=["--max-body", "2048"])
    status, _, _ = w.add_checkpoint(log.request(0, 5) + b"x" * 4096)
    assert status == 413
    assert w.add_checkpoint(log.request(0, 5))[0] == 200  # the limit is not in the way of real requests


def test_connections_are_bounded(witness_factory, log):
    import socket

    w = witness_factory(log_vkeys=[log.vkey], extra_args=["--max-connections", "2"])
    idle = [socket.create_connection(("127.0.0.1", w.port)) for _ in range(2)]
    # Once the server has accepted both idle connections, a third is closed at once rather than
    # queued behind them. Under load the server may not have accepted them yet, so a third that is
    # held open (recv times out) only means "not full yet": retry until the deadline, which fails
    # the test if the bound never bites.
    deadline = time.monotonic() + 15
    closed_at_once = False
    while not closed_at_once and time.monotonic() < deadline:
        extra = socket.create_connection(("127.0.0.1", w.port))
        extra.settimeout(0.5)
        try:
            closed_at_once = extra.recv(1) == b""
        except TimeoutError:
            pass
        finally:
            extra.close()
    assert closed_at_once
    for sock in idle:
        sock.close()
    # The server notices the closed sockets (and the probe's own connection ending) asynchronously:
    # until it has, a new connection may still be over the bound and closed at once.
    deadline = time.monotonic() + 5
    while True:
        try:
            status = w.add_checkpoint(log.request(0, 5))[0]
            break
        except http.client.RemoteDisconnected:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert status == 200


def test_a_body_without_content_length_is_refused(witness, log):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", witness.port, timeout=10)
    conn.putrequest("POST", "/add-checkpoint")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    conn.send(b"5\r\nhello\r\n0\r\n\r\n")
    assert conn.getresponse().status == 411
    conn.close()


def test_other_paths_and_methods(witness):
    assert post(witness.url, "/add-checkpoint/", b"x")[0] == 404
    assert get(witness.url, "/add-checkpoint")[0] == 404
    assert get(witness.url, "/latest")[0] == 400
    assert get(witness.url, "/healthz")[:2] == (200, "text/plain; charset=utf-8")
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", witness.port, timeout=10)
    conn.request("PUT", "/add-checkpoint", body=b"x")
    assert conn.getresponse().status == 405
    conn.close()


# -- 409 ------------------------------------------------------------------------------------------------------


def test_old_size_that_is_not_the_cosigned_size_is_409_with_the_size(witness, log):
    _cosign(witness, log, 0, 10)
    for old in (0, 5, 11):
        status, content_type, body = witness.add_checkpoint(log.request(old, 20))
        assert (status, content_type, body) == (409, "text/x.tlog.size", b"10\n")
    # A log that lost track asks with old 0, learns 10, and resends with a proof from 10.
    assert witness.add_checkpoint(log.request(10, 20))[0] == 200


def test_a_first_request_with_a_nonzero_old_size_is_409_with_0(witness, log):
    assert witness.add_checkpoint(log.request(5, 10)) == (409, "text/x.tlog.size", b"0\n")


def test_two_histories_same_size_is_409_and_nothing_is_stored(witness, log):
    """A log showing the witness a second history of the same size: refused and logged as evidence."""
    _cosign(witness, log, 0, 20)
    before = _state(witness)
    fork = log.fork(salt="rewritten ", at=10).grow(20)
    assert fork.root(20) != log.root(20)
    status, content_type, body = witness.add_checkpoint(fork.request(20, 20))
    assert (status, content_type, body) == (409, "text/x.tlog.size", b"20\n")
    assert _state(witness) == before
    [event] = [e for e in witness.events() if e.get("status") == 409]
    assert event["reason"].startswith("same size, different root") and event["note"] == fork.note(20)


# -- 422 ------------------------------------------------------------------------------------------------------


def test_two_histories_larger_tree_is_422_and_nothing_is_stored(witness, log):
    """The other history, presented as growth from the cosigned size, cannot prove consistency."""
    _cosign(witness, log, 0, 20)
    before = _state(witness)
    fork = log.fork(salt="rewritten ", at=10).grow(40)
    # The honest-looking proof of the fork, from its own size 20.
    assert witness.add_checkpoint(fork.request(20, 40))[0] == 422
    # The real log's proof attached to the fork's checkpoint.
    body = add_checkpoint_body(old_size=20, proof=log.grow(40).proof(20, 40), note=fork.note(40))
    assert witness.add_checkpoint(body)[0] == 422
    assert _state(witness) == before and _latest_size(witness, log.origin) == 20
    refusals = [e for e in witness.events() if e.get("status") == 422]
    assert len(refusals) == 2 and all(e["note"] == fork.note(40) for e in refusals)


def test_truncated_or_garbled_proofs_are_422(witness, log):
    _cosign(witness, log, 0, 13)
    proof = log.grow(50).proof(13, 50)
    for bad in (proof[:-1], [*proof, proof[0]], [proof[1], proof[0], *proof[2:]], [b"\x00" * 32] * len(proof), []):
        assert witness.add_checkpoint(add_checkpoint_body(old_size=13, proof=bad, note=log.note(50)))[0] == 422
    assert _latest_size(witness, log.origin) == 13


def test_equal_trees_with_a_proof_are_422(witness, log):
    _cosign(witness, log, 0, 13)
    body = add_checkpoint_body(old_size=13, proof=[b"\x00" * 32], note=log.note(13))
    assert witness.add_checkpoint(body)[0] == 422


# -- shrinking ------------------------------------------------------------------------------------------------


def test_a_shrunk_log_is_never_cosigned(witness, log):
    """After cosigning 100, every way of presenting a smaller tree is refused and nothing changes."""
    _cosign(witness, log, 0, 100)
    before = _state(witness)
    assert witness.add_checkpoint(log.request(0, 50)) == (409, "text/x.tlog.size", b"100\n")
    assert witness.add_checkpoint(add_checkpoint_body(old_size=100, proof=[], note=log.note(50)))[0] == 400
    assert witness.add_checkpoint(log.request(50, 50)) == (409, "text/x.tlog.size", b"100\n")
    assert _state(witness) == before and _latest_size(witness, log.origin) == 100


# -- durability -----------------------------------------------------------------------------------------------


def test_state_survives_kill_9_and_restart(witness, log):
    _cosign(witness, log, 0, 30)
    witness.kill()
    witness.restart()
    fork = log.fork(salt="after the crash ", at=10).grow(30)
    assert witness.add_checkpoint(log.request(0, 10)) == (409, "text/x.tlog.size", b"30\n")
    assert witness.add_checkpoint(fork.request(30, 30))[0] == 409
    assert witness.add_checkpoint(fork.grow(40).request(30, 40))[0] == 422
    assert _latest_size(witness, log.origin) == 30
    _cosign(witness, log, 30, 40)
    witness.kill()
    witness.restart()
    assert _latest_size(witness, log.origin) == 40


def test_state_file_is_replaced_atomically_and_private(witness, log):
    _cosign(witness, log, 0, 3)
    _cosign(witness, log, 3, 9)
    data = json.loads(witness.state_path.read_text())
    entry = data["logs"][log.origin]
    assert (entry["size"], base64.b64decode(entry["root"])) == (9, log.root(9))
    assert witness.state_path.stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in witness.state_path.parent.iterdir() if p.name.endswith(".tmp")) == []


def test_a_second_process_on_the_same_state_file_refuses_to_start(witness, log):
    twin = subprocess.run(
        [sys.executable, "-m", "audit.witness", "serve", "--listen", "127.0.0.1:0", "--name", "witness-1.test",
         "--key", str(witness.key_path), "--state", str(witness.state_path), "--log", log.vkey],
        cwd=ROOT, env=witness_env(), capture_output=True, text=True, timeout=30,
    )
    assert twin.returncode == 2 and "in use by another witness process" in twin.stderr


def test_a_corrupt_state_file_refuses_to_start(tmp_path, log):
    from tests.witnesses import start_witness

    w = start_witness(tmp_path, log_vkeys=[log.vkey])
    try:
        _cosign(w, log, 0, 5)
    finally:
        w.stop()
    w.state_path.write_text('{"format": "something else"}')
    with pytest.raises(RuntimeError, match="not a witness state file"):
        w.restart()


# -- races ----------------------------------------------------------------------------------------------------


def _race(witness: RunningWitness, bodies: list[bytes]) -> list[tuple[int, str, bytes]]:
    barrier = threading.Barrier(len(bodies))
    results: list[tuple[int, str, bytes]] = [(0, "", b"")] * len(bodies)

    def send(i: int) -> None:
        barrier.wait()
        results[i] = witness.add_checkpoint(bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_racing_n_and_n_plus_k_never_roll_back(witness, log):
    """Two requests from the same cosigned size race; the stored size never decreases, one wins."""
    stored = 1
    _cosign(witness, log, 0, stored)
    log.grow(stored + 40 * 10)
    for _ in range(40):
        small, large = stored + 3, stored + 10
        results = _race(witness, [log.request(stored, small), log.request(stored, large)])
        statuses = sorted(r[0] for r in results)
        assert statuses == [200, 409], results
        winner = small if results[0][0] == 200 else large
        latest = _latest_size(witness, log.origin)
        assert latest == winner >= stored
        stored = latest


def test_racing_forks_at_most_one_is_cosigned(witness, log):
    """Two inconsistent checkpoints of the same size, from the same state: never both cosigned."""
    current, size = log, 8
    _cosign(witness, current, 0, size)
    for i in range(30):
        a = current.fork(salt=f"a{i} ", at=size).grow(size + 4)
        b = current.fork(salt=f"b{i} ", at=size).grow(size + 4)
        results = _race(witness, [a.request(size, size + 4), b.request(size, size + 4)])
        assert sorted(r[0] for r in results) == [200, 409], results
        # The winner's history is now the cosigned one; the loser's is refused for ever after.
        current, loser = (a, b) if results[0][0] == 200 else (b, a)
        assert witness.add_checkpoint(loser.request(size + 4, size + 4))[0] == 409
        assert witness.add_checkpoint(loser.grow(size + 8).request(size + 4, size + 8))[0] == 422
        size += 4
        assert _latest_size(witness, log.origin) == size


# -- independence from the log's code -------------------------------------------------------------------------


def test_the_witness_process_imports_no_django(tmp_path, log):
    """``python -m audit.witness serve`` without DJANGO_SETTINGS_MODULE: no django, no governance module loaded."""
    from tests.witnesses import start_witness

    w = start_witness(tmp_path, log_vkeys=[log.vkey], extra_args=[])
    w.stop()
    env = witness_env()
    assert "DJANGO_SETTINGS_MODULE" not in env
    errors = tmp_path / "importtime.txt"
    with open(errors, "w") as stderr:  # a file, not a pipe: -X importtime writes a lot before "listening"
        proc = subprocess.Popen(
            [sys.executable, "-X", "importtime", *w.command()[1:]],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("listening on "), line
        w.url = line.split()[-1]
        _cosign(w, log, 0, 5)  # exercise the request path too: lazy imports would show here
        assert w.latest(log.origin)[0] == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    lines = errors.read_text().splitlines()
    imported = {part.split("|")[-1].strip() for part in lines if part.startswith("import time:")}
    assert "audit.witness.server" in imported and "audit.cosignature" in imported
    forbidden = sorted(m for m in imported if m.split(".")[0] in {"django", "governance", "access", "celery"})
    assert forbidden == []


def test_keygen_and_vkey_commands(tmp_path):
    key = tmp_path / "k.pem"
    run = [sys.executable, "-m", "audit.witness"]
    made = subprocess.run([*run, "keygen", "--key", str(key), "--name", "w.example/1"],
                          cwd=ROOT, env=witness_env(), capture_output=True, text=True, check=True)
    vkey = made.stdout.strip()
    assert Cosigner.parse(vkey).name == "w.example/1" and key.stat().st_mode & 0o777 == 0o600
    again = subprocess.run([*run, "vkey", "--key", str(key), "--name", "w.example/1"],
                           cwd=ROOT, env=witness_env(), capture_output=True, text=True, check=True)
    assert again.stdout.strip() == vkey
    overwrite = subprocess.run([*run, "keygen", "--key", str(key), "--name", "w.example/1"],
                               cwd=ROOT, env=witness_env(), capture_output=True, text=True)
    assert overwrite.returncode == 2 and Path(key).read_bytes() and "never overwritten" in overwrite.stderr
    with pytest.raises(NoteError):
        Cosigner.parse(vkey.replace("w.example/1", "w.example/2"))


@pytest.mark.parametrize("problem", ["bad log vkey", "a cosigner vkey as log key", "missing key", "not an Ed25519 key"])
def test_serve_refuses_bad_configuration_with_exit_2(tmp_path, log, problem):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

    from audit.witness.server import write_key

    key = tmp_path / "k.pem"
    write_key(key, Ed25519PrivateKey.generate())
    vkey = log.vkey
    if problem == "bad log vkey":
        vkey = vkey[:-4]
    elif problem == "a cosigner vkey as log key":
        vkey = str(Cosigner.from_key(log.origin, log.key.public_key()))
    elif problem == "missing key":
        key = tmp_path / "nowhere.pem"
    else:
        key.unlink()
        key.write_bytes(generate_private_key(SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    result = subprocess.run(
        [sys.executable, "-m", "audit.witness", "serve", "--listen", "127.0.0.1:0", "--name", "w.test",
         "--key", str(key), "--state", str(tmp_path / "state.json"), "--log", vkey],
        cwd=ROOT, env=witness_env(), capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2 and result.stderr.startswith("error: ") and not result.stdout
    assert not (tmp_path / "state.json").exists()
