"""Requests written by other implementations, fed to our witness.

Vector: FiloSottile/torchwood cmd/litewitness/testdata/multi-cosigs-ed25519.txt, the add-checkpoint
request litewitness's own tests send for a Sigsum log (public key 52c05eda...; the origin is
``sigsum.org/v1/tree/`` + hex SHA-256 of that key, the note signature is plain Ed25519, type 0x01).
Accepting it byte for byte shows that our parsing, signed-note rules and key IDs agree with theirs.
"""
from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.cosignature import AddCheckpoint, Cosigner, verify_cosignatures
from audit.note import verifier_key
from audit.witness.server import Witness

SIGSUM_LOG_KEY = bytes.fromhex("52c05edad1bf5feffa81354faae59a655d9a9a1a793ed2f62c39c26c0be2aecd")
ORIGIN = "sigsum.org/v1/tree/985ea163f5af026723561354f51f2ebcdcf2af809ce254ccfb64aa9aadd80f90"
NOTE = (
    f"{ORIGIN}\n1\nKgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n"
    f"\u2014 {ORIGIN} 7BKT0gOfNZ1J0So9unY3BZtm2YkPIoNYM/dce0Z2avJDs8dxN6ts9bOSwwrVrbjm6P9K3ZxpK6jJngOG6YvGGzV/lwo=\n"
)
LITEWITNESS_REQUEST = ("old 0\n\n" + NOTE).encode()


def test_the_sigsum_origin_and_key_id_match_the_vector():
    assert ORIGIN == "sigsum.org/v1/tree/" + hashlib.sha256(SIGSUM_LOG_KEY).hexdigest()
    assert verifier_key(ORIGIN, SIGSUM_LOG_KEY).split("+")[1] == "ec1293d2"  # the signature's first 4 bytes


def test_litewitness_request_is_cosigned_by_our_witness(tmp_path):
    key = Ed25519PrivateKey.generate()
    witness = Witness(name="example.com/witness", key=key, log_vkeys=[verifier_key(ORIGIN, SIGSUM_LOG_KEY)],
                      state_path=tmp_path / "state.json")
    try:
        request = AddCheckpoint.parse(LITEWITNESS_REQUEST)
        assert (request.old_size, request.proof, request.checkpoint().tree_size) == (0, [], 1)
        answer = witness.add_checkpoint(LITEWITNESS_REQUEST)
        assert answer.status == 200
        cosigner = Cosigner.from_key("example.com/witness", key.public_key())
        assert len(verify_cosignatures(NOTE + answer.body.decode(), [cosigner])) == 1
        # The same request again: old 0 is no longer the cosigned size.
        assert (witness.add_checkpoint(LITEWITNESS_REQUEST).status, witness.add_checkpoint(LITEWITNESS_REQUEST).body) \
            == (409, b"1\n")
    finally:
        witness.close()


def test_the_vector_with_one_changed_byte_is_refused(tmp_path):
    witness = Witness(name="example.com/witness", key=Ed25519PrivateKey.generate(),
                      log_vkeys=[verifier_key(ORIGIN, SIGSUM_LOG_KEY)], state_path=tmp_path / "state.json")
    try:
        forged = LITEWITNESS_REQUEST.replace(b"\n1\n", b"\n2\n")
        assert witness.add_checkpoint(forged).status == 403
    finally:
        witness.close()
