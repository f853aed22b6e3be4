"""Pure tests of audit.cosignature against c2sp.org/tlog-cosignature, signed-note and tlog-witness.

Vectors:
- C2SP/C2SP tlog-witness.md: the example add-checkpoint request body and response lines.
- C2SP/C2SP tlog-cosignature.md: the example cosignature line (its key is not published, so
  only its framing is checked: key ID, big-endian timestamp 1679315147, 64-byte signature).
- A real checkpoint of the arche2025h1.staging.ct.transparency.dev log cosigned by public
  witnesses, with the vkey of the remora.n621.de witness (type 0x04): both as published in a
  client library's tests of real checkpoints. It checks key ID, message and framing at once
  against a witness we did not write.
- transparency-dev/formats note/note_cosigv1_test.go: the vkeys it accepts and rejects.
"""
# The vectors are quoted whole, as published: their lines are longer than the limit.
# ruff: noqa: E501
from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.cosignature import (
    MAX_TIMESTAMP,
    AddCheckpoint,
    Cosigner,
    ProtocolError,
    add_checkpoint_body,
    cosignature_line,
    cosigner_key_id,
    cosigner_verifier_key,
    verify_cosignatures,
)
from audit.note import CheckpointBody, NoteError, Verifier, open_note, public_bytes, sign_note, verifier_key

SPEC_REQUEST = (
    "old 20852014\n"
    "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
    "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
    "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
    "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
    "\n"
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "\u2014 example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n"
)
SPEC_COSIGNATURE = "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA=="

REAL_NOTE = (
    "arche2025h1.staging.ct.transparency.dev\n"
    "1432088532\n"
    "U7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=\n"
    "\n"
    "\u2014 arche2025h1.staging.ct.transparency.dev zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6hoGREPMHbdQ3urbllzalApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=\n"
    "\u2014 arche2025h1.staging.ct.transparency.dev ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3NygNI75MdhL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=\n"
    "\u2014 transparency.dev/DEV:witness-little-garden 2AQqhwAAAABqEiEgzgFIqqhbUoDwjMWE6UP8nd8/KYTzwZ2rhIgcqoXHAwVkjZr4AscylP3v7sEodkRAErumC2q44vdgJY096st5BQ==\n"
    "\u2014 witness1.smartit.nu/witness1 pIyCDwAAAABqEiEghIp82KWebrw7/oHQwlTAm3g2RKS4+eebl8eO0WH+/iEcxZ75W3u5hNI7TOQtmJbqmNWVuE0tgh0XwzdZsDsUAQ==\n"
    "\u2014 remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==\n"
    "\u2014 witness.stagemole.eu Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvVr+AJmIY/2TUFucgKi7lI7cUiOvKFYe/TmN9DAg==\n"
)
REMORA_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
REMORA_TIMESTAMP = 0x6A122120

CHECKPOINT = "example.com/log\n5\n" + base64.b64encode(b"\x07" * 32).decode() + "\n"


def _key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def _cosigner(name: str, key: Ed25519PrivateKey) -> Cosigner:
    return Cosigner.parse(cosigner_verifier_key(name, public_bytes(key.public_key())))


# -- key IDs and vkeys ----------------------------------------------------------------------------------------


def test_key_id_is_sha256_of_name_newline_0x04_and_key():
    public = public_bytes(_key(1).public_key())
    assert cosigner_key_id("w.example/1", public) == hashlib.sha256(b"w.example/1\n\x04" + public).digest()[:4]
    # The same key under the log's signature type (0x01) has another ID: the two never collide.
    assert cosigner_key_id("w.example/1", public) != bytes.fromhex(verifier_key("w.example/1", public).split("+")[1])


def test_a_published_witness_vkey_parses_and_prints_back():
    cosigner = Cosigner.parse(REMORA_VKEY)
    assert (cosigner.name, cosigner.key_id.hex()) == ("remora.n621.de", "da77ade7")
    assert str(cosigner) == REMORA_VKEY


@pytest.mark.parametrize(
    "vkey",
    [
        "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6",  # an Ed25519 (0x01) note key, not a cosigner
        "bananas.sigstore.dev+12344556",
        "rekor.sigstore.dev+12345678+THIS_IS_NOT_BASE64!",
        "rekor.sigstore.dev+12345678+AwEB",
        REMORA_VKEY.replace("da77ade7", "00000000"),  # a key ID that is not this key's
        REMORA_VKEY.replace("da77ade7", "da 77ade"),
        REMORA_VKEY.replace("remora.n621.de", "remora n621.de"),  # a space in the name
        "+" + REMORA_VKEY.split("+", 1)[1],  # empty name
    ],
)
def test_malformed_or_foreign_vkeys_are_refused(vkey):
    with pytest.raises(NoteError):
        Cosigner.parse(vkey)


# -- the signed message and the line --------------------------------------------------------------------------


def test_cosignature_line_signs_header_time_and_checkpoint_with_big_endian_timestamp():
    key = _key(2)
    line = cosignature_line(CHECKPOINT, name="w.example/1", key=key, timestamp=1679315147)
    assert line.startswith("\u2014 w.example/1 ") and line.endswith("\n")
    blob = base64.b64decode(line.split(" ")[2])
    assert len(blob) == 76
    assert blob[:4] == cosigner_key_id("w.example/1", public_bytes(key.public_key()))
    assert blob[4:12] == bytes.fromhex("00000000641850cb")
    # The exact message of the spec: two newline-terminated lines, then the whole checkpoint.
    key.public_key().verify(blob[12:], b"cosignature/v1\ntime 1679315147\n" + CHECKPOINT.encode())


def test_real_public_witness_cosignature_verifies():
    [found] = verify_cosignatures(REAL_NOTE, [Cosigner.parse(REMORA_VKEY)])
    assert found.timestamp == REMORA_TIMESTAMP
    assert found.line.startswith("\u2014 remora.n621.de 2net5w") and found.line.endswith("==\n")


def test_real_cosignature_fails_on_a_changed_checkpoint():
    forged = REAL_NOTE.replace("1432088532", "1432088533")
    with pytest.raises(NoteError, match="does not verify"):
        verify_cosignatures(forged, [Cosigner.parse(REMORA_VKEY)])


def test_spec_example_cosignature_framing():
    blob = base64.b64decode(SPEC_COSIGNATURE)
    assert (len(blob), blob[:4].hex(), int.from_bytes(blob[4:12], "big")) == (76, "8d66cf3f", 1679315147)


def test_roundtrip_and_the_line_keeps_the_note_valid_for_the_log_key():
    log_key, witness_key = _key(3), _key(4)
    note = sign_note(CHECKPOINT, [("example.com/log", log_key)])
    line = cosignature_line(CHECKPOINT, name="w.example/1", key=witness_key, timestamp=10)
    cosigned = note + line
    [found] = verify_cosignatures(cosigned, [_cosigner("w.example/1", witness_key)])
    assert (found.timestamp, found.line, str(found.cosigner)) == (10, line, str(_cosigner("w.example/1", witness_key)))
    # A verifier that knows only the log key ignores the cosignature (signed-note: unknown keys ignored).
    log_verifier = Verifier.parse(verifier_key("example.com/log", public_bytes(log_key.public_key())))
    opened = open_note(cosigned, [log_verifier])
    assert (opened.text, opened.unknown_signatures) == (CHECKPOINT, 1)


def test_unknown_cosigners_and_the_log_signature_are_ignored():
    note = sign_note(CHECKPOINT, [("example.com/log", _key(3))])
    note += cosignature_line(CHECKPOINT, name="w.example/other", key=_key(5), timestamp=1)
    assert verify_cosignatures(note, [_cosigner("w.example/1", _key(4))]) == []


def test_same_name_other_key_is_ignored_not_an_error():
    # signed-note: a line sharing the name but not the key ID of a known key is someone else's.
    note = sign_note(CHECKPOINT, [("example.com/log", _key(3))])
    note += cosignature_line(CHECKPOINT, name="w.example/1", key=_key(6), timestamp=1)
    assert verify_cosignatures(note, [_cosigner("w.example/1", _key(4))]) == []


def test_a_known_cosigner_whose_signature_fails_rejects_the_note():
    key = _key(4)
    line = cosignature_line(CHECKPOINT, name="w.example/1", key=key, timestamp=7)
    blob = bytearray(base64.b64decode(line.split(" ")[2]))
    blob[11] ^= 1  # another timestamp: the signature covers it
    bad = "\u2014 w.example/1 " + base64.b64encode(bytes(blob)).decode() + "\n"
    note = sign_note(CHECKPOINT, [("example.com/log", _key(3))]) + bad
    with pytest.raises(NoteError, match="does not verify"):
        verify_cosignatures(note, [_cosigner("w.example/1", key)])


def test_a_log_signature_under_the_cosigner_key_id_is_refused_as_malformed():
    # A 68-byte Ed25519 note signature that claims the cosigner's key ID cannot be a cosignature.
    key = _key(4)
    kid = cosigner_key_id("w.example/1", public_bytes(key.public_key()))
    line = "\u2014 w.example/1 " + base64.b64encode(kid + key.sign(CHECKPOINT.encode())).decode() + "\n"
    with pytest.raises(NoteError, match="not 76"):
        verify_cosignatures(CHECKPOINT + "\n" + line, [_cosigner("w.example/1", key)])


def test_timestamp_above_2_63_minus_1_is_refused():
    key = _key(4)
    with pytest.raises(NoteError):
        cosignature_line(CHECKPOINT, name="w.example/1", key=key, timestamp=MAX_TIMESTAMP + 1)
    with pytest.raises(NoteError):
        cosignature_line(CHECKPOINT, name="w.example/1", key=key, timestamp=-1)
    top = cosignature_line(CHECKPOINT, name="w.example/1", key=key, timestamp=MAX_TIMESTAMP)
    assert verify_cosignatures(CHECKPOINT + "\n" + top, [_cosigner("w.example/1", key)])[0].timestamp == MAX_TIMESTAMP
    # A line that carries 2^63 (signed, so only the bound can refuse it).
    kid = cosigner_key_id("w.example/1", public_bytes(key.public_key()))
    sig = key.sign(b"cosignature/v1\ntime 9223372036854775808\n" + CHECKPOINT.encode())
    line = "\u2014 w.example/1 " + base64.b64encode(kid + (2**63).to_bytes(8, "big") + sig).decode() + "\n"
    with pytest.raises(NoteError, match="2\\^63"):
        verify_cosignatures(CHECKPOINT + "\n" + line, [_cosigner("w.example/1", key)])


def test_a_cosigner_counts_once():
    key = _key(4)
    first = cosignature_line(CHECKPOINT, name="w.example/1", key=key, timestamp=1)
    second = cosignature_line(CHECKPOINT, name="w.example/1", key=key, timestamp=2)
    found = verify_cosignatures(CHECKPOINT + "\n" + first + second, [_cosigner("w.example/1", key)])
    assert [c.timestamp for c in found] == [1]


@pytest.mark.parametrize(
    "note",
    [
        CHECKPOINT,  # no signatures
        CHECKPOINT + "\n",  # blank line, no signature line
        CHECKPOINT + "\nnot a signature\n",
        CHECKPOINT + "\n\u2014 w.example/1 !!!!\n",
        CHECKPOINT + "\n\u2014 w.example/1 AAAA AAAA\n",
        CHECKPOINT.replace("5", "5\t") + "\n\u2014 a AAAA\n",
    ],
)
def test_malformed_notes_are_refused(note):
    with pytest.raises(NoteError):
        verify_cosignatures(note, [_cosigner("w.example/1", _key(4))])


def test_cosigning_something_that_is_not_a_checkpoint_is_refused():
    with pytest.raises(NoteError):
        cosignature_line("just text\n", name="w.example/1", key=_key(4), timestamp=1)
    with pytest.raises(NoteError):
        cosignature_line(CHECKPOINT, name="w example", key=_key(4), timestamp=1)


# -- the add-checkpoint body ----------------------------------------------------------------------------------


def test_spec_example_request_parses():
    request = AddCheckpoint.parse(SPEC_REQUEST.encode())
    assert request.old_size == 20852014
    assert [base64.b64encode(h).decode() for h in request.proof] == SPEC_REQUEST.split("\n")[1:5]
    assert request.note == SPEC_REQUEST.split("\n\n", 1)[1]
    assert request.note.count("\u2014 example.com/behind-the-sofa ") == 2
    body = request.checkpoint()
    assert (body.origin, body.tree_size) == ("example.com/behind-the-sofa", 20852163)
    # And building it again gives the same bytes.
    again = add_checkpoint_body(old_size=request.old_size, proof=request.proof, note=request.note)
    assert again == SPEC_REQUEST.encode()


def test_first_request_has_old_zero_and_no_proof():
    note = sign_note(CHECKPOINT, [("example.com/log", _key(3))])
    body = add_checkpoint_body(old_size=0, proof=[], note=note)
    assert body == b"old 0\n\n" + note.encode()
    assert AddCheckpoint.parse(body) == AddCheckpoint(old_size=0, proof=[], note=note)


def _body(head: str) -> bytes:
    return (head + SPEC_REQUEST.split("\n\n", 1)[1]).encode()


PROOF_LINE = "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"


def test_63_proof_lines_are_accepted_64_refused():
    assert len(AddCheckpoint.parse(_body("old 5\n" + PROOF_LINE * 63 + "\n")).proof) == 63
    with pytest.raises(ProtocolError) as err:
        AddCheckpoint.parse(_body("old 5\n" + PROOF_LINE * 64 + "\n"))
    assert err.value.status == 400
    with pytest.raises(ProtocolError):
        add_checkpoint_body(old_size=5, proof=[b"\x00" * 32] * 64, note="x")


@pytest.mark.parametrize(
    "head",
    [
        "old 020852014\n\n",  # leading zero
        "old 00\n\n",
        "old -1\n\n",
        "old +5\n\n",
        "old 5 \n\n",
        "old  5\n\n",
        "old\n\n",
        "Old 5\n\n",
        "old 9223372036854775808\n\n",  # above 2^63-1
        "old \u0665\n\n",  # a non-ASCII digit
        "old 5\nnot base64!\n\n",
        "old 5\nAAAA\n\n",  # base64, but not a 32-byte hash
        "old 5\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw\n\n",  # missing padding
        "old 5\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkax=\n\n",  # non-canonical trailing bits
        "old 0\n" + PROOF_LINE + "\n",  # a proof from size 0
    ],
)
def test_malformed_heads_are_400(head):
    with pytest.raises(ProtocolError) as err:
        AddCheckpoint.parse(_body(head))
    assert err.value.status == 400 and err.value.message


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"old 5\n",
        b"old 5\n" + PROOF_LINE.encode(),  # no blank line
        b"old 0\n\n",  # no checkpoint
        b"old 0\n\nexample.com/log\n5\n",  # not a signed note
        b"old 0\n\nexample.com/log\n5\nAAAA\n\n\xe2\x80\x94 a AAAA\n",  # root hash not 32 bytes
        b"old 0\n\nexample.com/log\n05\n" + base64.b64encode(b"\x07" * 32) + b"\n\n\xe2\x80\x94 a AAAA\n",
        b"old 0\n\n\xff\xfe\n",  # not UTF-8
        b"old 0\n\nexample.com/log\x00\n5\n" + base64.b64encode(b"\x07" * 32) + b"\n\n\xe2\x80\x94 a AAAA\n",
    ],
)
def test_malformed_bodies_are_400(body):
    with pytest.raises(ProtocolError) as err:
        AddCheckpoint.parse(body)
    assert err.value.status == 400


def test_checkpoint_sizes_above_2_63_minus_1_are_400():
    text = CheckpointBody(origin="example.com/log", tree_size=2**63, root_hash=b"\x07" * 32).text()
    note = sign_note(text, [("example.com/log", _key(3))])
    with pytest.raises(ProtocolError):
        AddCheckpoint.parse(b"old 0\n\n" + note.encode())


def test_protocol_error_carries_its_status():
    err = ProtocolError("nope", status=409)
    assert (err.status, err.message, str(err), isinstance(err, ValueError)) == (409, "nope", "nope", True)
