"""Pure tests of audit.note: C2SP signed notes and tlog checkpoints.

Vectors:
- golang/mod sumdb/note/note_test.go (golang.org/x/mod/sumdb/note): the
  PeterNeumann and EnochRoot keys, the signer key of PeterNeumann, the signed
  note and its signatures, and the malformed notes it rejects.
- C2SP/C2SP tlog-checkpoint.md: the example checkpoint body.
"""
from __future__ import annotations

import base64
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.note import (
    SIG_PREFIX,
    CheckpointBody,
    NoteError,
    Verifier,
    key_id,
    open_note,
    public_bytes,
    sign_note,
    verifier_key,
)

# golang/mod sumdb/note/note_test.go
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)


def _peter_private() -> Ed25519PrivateKey:
    # PRIVATE+KEY+<name>+<hash>+base64(0x01 || 32-byte seed); the base64 itself contains a '+'
    raw = base64.b64decode(PETER_SKEY.split("+", 4)[4])
    assert raw[:1] == b"\x01"
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


def _peter() -> Verifier:
    return Verifier.parse(PETER_VKEY)


def _enoch() -> Verifier:
    return Verifier.parse(ENOCH_VKEY)


def _new_key(name: str) -> tuple[tuple[str, Ed25519PrivateKey], Verifier]:
    private = Ed25519PrivateKey.generate()
    return (name, private), Verifier.parse(verifier_key(name, public_bytes(private.public_key())))


# --------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("vkey", [PETER_VKEY, ENOCH_VKEY])
def test_key_id_and_verifier_key_match_the_go_vectors(vkey: str) -> None:
    name, hex_id, b64 = vkey.split("+", 2)
    public = base64.b64decode(b64)[1:]
    assert key_id(name, public).hex() == hex_id
    assert verifier_key(name, public) == vkey


def test_signer_key_of_the_go_vector_has_the_published_public_key() -> None:
    public = public_bytes(_peter_private().public_key())
    assert verifier_key("PeterNeumann", public) == PETER_VKEY


def test_verifier_key_format() -> None:
    for name in ["example.com/log", "a", "ledger.example/\u00e9t\u00e9"]:
        private = Ed25519PrivateKey.generate()
        public = public_bytes(private.public_key())
        vkey = verifier_key(name, public)
        match = re.fullmatch(r"(.+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]{44})", vkey)
        assert match is not None, vkey
        assert match[1] == name
        assert bytes.fromhex(match[2]) == key_id(name, public)
        assert base64.b64decode(match[3]) == b"\x01" + public
        assert str(Verifier.parse(vkey)) == vkey


def test_key_id_is_the_truncated_sha256_of_name_newline_type_and_key() -> None:
    import hashlib

    public = bytes(range(32))
    assert key_id("n", public) == hashlib.sha256(b"n\n\x01" + public).digest()[:4]
    assert key_id("n", public) != key_id("m", public)


def test_verifier_parse() -> None:
    verifier = _peter()
    assert verifier.name == "PeterNeumann"
    assert verifier.key_id.hex() == "c74f20a3"
    assert str(verifier) == PETER_VKEY
    assert Verifier.parse(f"  {PETER_VKEY}\n") == verifier  # surrounding whitespace tolerated


def test_verifier_parse_rejects_every_mangling_of_the_go_key() -> None:
    # As golang/mod sumdb/note TestNewVerifier: every proper substring, every byte incremented.
    for i in range(len(PETER_VKEY) + 1):
        for j in range(i + 1, len(PETER_VKEY) + 1):
            if (i, j) != (0, len(PETER_VKEY)):
                with pytest.raises(NoteError):
                    Verifier.parse(PETER_VKEY[i:j])
    for i in range(len(PETER_VKEY)):
        mangled = PETER_VKEY[:i] + chr(ord(PETER_VKEY[i]) + 1) + PETER_VKEY[i + 1 :]
        with pytest.raises(NoteError):
            Verifier.parse(mangled)


@pytest.mark.parametrize(
    "vkey",
    [
        # wrong length key, with adjusted key hash (Go vector)
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        # unknown algorithm, with adjusted key hash (Go vector)
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3ff+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+zz4f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq_LDE4izWy10TW",  # URL-safe alphabet
        "EnochRoot+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # name does not match the ID
    ],
)
def test_verifier_parse_rejects_malformed_keys(vkey: str) -> None:
    with pytest.raises(NoteError):
        Verifier.parse(vkey)


# --------------------------------------------------------------------------------------
# Signing and opening
# --------------------------------------------------------------------------------------


def test_sign_note_reproduces_the_go_signature() -> None:
    # Ed25519 is deterministic, so the Go output is reproduced byte for byte.
    assert sign_note(TEXT, [("PeterNeumann", _peter_private())]) == TEXT + "\n" + PETER_SIG


def test_open_note_verifies_the_go_note() -> None:
    opened = open_note(TEXT + "\n" + PETER_SIG, [_peter()])
    assert opened.text == TEXT
    assert [str(v) for v in opened.verified_by] == [PETER_VKEY]
    assert opened.unknown_signatures == 0


def test_open_note_one_known_one_unknown_signature() -> None:
    opened = open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [_peter()])
    assert opened.text == TEXT
    assert [v.name for v in opened.verified_by] == ["PeterNeumann"]
    assert opened.unknown_signatures == 1


def test_open_note_two_known_signatures_both_verified() -> None:
    opened = open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [_enoch(), _peter()])
    assert [v.name for v in opened.verified_by] == ["PeterNeumann", "EnochRoot"]
    assert opened.unknown_signatures == 0


def test_open_note_without_a_known_key_is_rejected() -> None:
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [])
    # a key with the same name but another key ID is not the signer's key
    _, impostor = _new_key("PeterNeumann")
    with pytest.raises(NoteError, match="no signature from a known key"):
        open_note(TEXT + "\n" + PETER_SIG, [impostor])


def test_open_note_rejects_a_known_key_with_a_bad_signature() -> None:
    # Go vector: four base64 characters inserted into the signature
    bad = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(NoteError, match="does not verify"):
        open_note(TEXT + "\n" + bad, [_peter()])
    # one verified signature does not rescue a failing one from another known key
    bad_enoch = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    with pytest.raises(NoteError, match="does not verify"):
        open_note(TEXT + "\n" + PETER_SIG + bad_enoch, [_peter(), _enoch()])


def test_open_note_rejects_truncated_or_substituted_signatures_from_a_known_key() -> None:
    blob = base64.b64decode(PETER_SIG.split(" ")[2])
    for sig in [blob[:5], blob[:-1], blob + b"\x00", blob[:4] + bytes(64), blob[:4] + blob[4:][::-1]]:
        line = f"{SIG_PREFIX}PeterNeumann {base64.b64encode(sig).decode()}\n"
        with pytest.raises(NoteError):
            open_note(TEXT + "\n" + line, [_peter()])


def test_open_note_rejects_text_changed_by_one_byte() -> None:
    note = TEXT + "\n" + PETER_SIG
    for i in range(len(TEXT) - 1):  # every byte of the text but the final newline
        changed = note[:i] + chr(ord(note[i]) ^ 1) + note[i + 1 :]
        with pytest.raises(NoteError):
            open_note(changed, [_peter()])
    with pytest.raises(NoteError):
        open_note(TEXT[:-1] + "!\n" + "\n" + PETER_SIG, [_peter()])
    with pytest.raises(NoteError):
        open_note("x" + note, [_peter()])


@pytest.mark.parametrize(
    "note",
    [
        # the malformed notes of golang/mod sumdb/note TestOpen
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name")[:-1],
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        # and more
        "",
        "\n",
        TEXT + PETER_SIG,  # missing blank line
        TEXT + "\n" + PETER_SIG.replace("\u2014 ", "- "),  # hyphen instead of em dash
        TEXT + "\n" + PETER_SIG.replace("\u2014 ", "\u2014"),  # no space after the dash
        TEXT + "\n" + PETER_SIG.replace("PeterNeumann ", "PeterNeumann  "),  # two spaces
        TEXT + "\n" + PETER_SIG.replace("PeterNeumann ", "PeterNeumann"),  # no space before the signature
        TEXT + "\n" + PETER_SIG.replace("\n", " extra\n"),  # a third field
        TEXT + "\n" + PETER_SIG.replace("x08go/", "x08go_"),  # not standard base64
        TEXT + "\n" + PETER_SIG.replace("M=\n", "M\n"),  # missing padding
        TEXT + "\n" + "\u2014 PeterNeumann AAAA\n",  # shorter than a key ID and one byte
        TEXT + "\n" + "\u2014 PeterNeumann \n",
        TEXT + "\n" + PETER_SIG + "\n",  # blank line after the signatures
        TEXT + "\n" + PETER_SIG + "\n" + PETER_SIG[:-1],
    ],
)
def test_open_note_rejects_malformed_notes(note: str) -> None:
    with pytest.raises(NoteError):
        open_note(note, [_peter()])


def test_open_note_ignores_signatures_from_unknown_keys() -> None:
    # given: a note signed by a known key and by two others, one of them with the same name
    known_signer, known = _new_key("ledger.example/log")
    other_signer, _ = _new_key("witness.example/w1")
    same_name_signer, _ = _new_key("ledger.example/log")
    text = "ledger.example/log\n3\n" + base64.b64encode(bytes(32)).decode() + "\n"
    note = sign_note(text, [known_signer, other_signer, same_name_signer])
    # when
    opened = open_note(note, [known])
    # then
    assert opened.text == text
    assert opened.verified_by == [known]
    assert opened.unknown_signatures == 2


def test_open_note_ignores_an_unknown_name_with_a_known_key_id() -> None:
    # 'unknown keys, even if they share a name or ID (but not both) with a known key'
    blob = PETER_SIG.split(" ")[2]
    note = TEXT + "\n" + PETER_SIG + f"{SIG_PREFIX}CarmenSandiego {blob}"
    opened = open_note(note, [_peter()])
    assert opened.unknown_signatures == 1


def test_open_note_accepts_repeated_signatures() -> None:
    # golang/mod's 'Duplicated verified and unverified signatures' note opens fine.
    bad_enoch = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    note = TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + bad_enoch
    opened = open_note(note, [_peter()])
    assert opened.text == TEXT
    assert {v.name for v in opened.verified_by} == {"PeterNeumann"}
    assert opened.unknown_signatures >= 2


@pytest.mark.parametrize(
    "text",
    [
        "one line\n",
        "a\n\nb\n",  # the text may contain blank lines
        "a\n\n",  # even at its end: the last blank line separates
        "\u00e9t\u00e9 \U0001f600 \u2014 x\n",
        "\u2014 looks like a signature\n",
        "origin\n0\n" + base64.b64encode(bytes(32)).decode() + "\nextension line\n",
    ],
)
def test_sign_and_open_round_trip(text: str) -> None:
    # given
    first, first_verifier = _new_key("ledger.example/log")
    second, second_verifier = _new_key("witness.example/w1")
    # when
    note = sign_note(text, [first, second])
    # then
    assert note.startswith(text + "\n" + SIG_PREFIX)
    assert note.endswith("\n")
    opened = open_note(note, [first_verifier, second_verifier])
    assert opened.text == text
    assert opened.verified_by == [first_verifier, second_verifier]
    assert open_note(note, [second_verifier]).text == text


def test_sign_note_requires_a_final_newline() -> None:
    signer, _ = _new_key("k")
    with pytest.raises(NoteError):
        sign_note("no newline", [signer])
    with pytest.raises(NoteError):
        sign_note("", [signer])


@pytest.mark.parametrize("text", ["bell \x07\n", "tab\there\n", "cr\r\n"])
def test_open_note_rejects_control_characters(text: str) -> None:
    signer, verifier = _new_key("k")
    with pytest.raises(NoteError):
        open_note(sign_note(text, [signer]), [verifier])


# --------------------------------------------------------------------------------------
# Checkpoints (C2SP tlog-checkpoint)
# --------------------------------------------------------------------------------------

SPEC_ORIGIN = "example.com/behind-the-sofa"
SPEC_ROOT_B64 = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
SPEC_BODY = f"{SPEC_ORIGIN}\n20852163\n{SPEC_ROOT_B64}\n"


def test_checkpoint_text_of_the_c2sp_example() -> None:
    body = CheckpointBody(SPEC_ORIGIN, 20852163, base64.b64decode(SPEC_ROOT_B64))
    assert body.text() == SPEC_BODY
    assert CheckpointBody.parse(SPEC_BODY) == body


@pytest.mark.parametrize(
    "body",
    [
        CheckpointBody("o", 0, bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")),
        CheckpointBody("ledger.example/log", 1, bytes(32)),
        CheckpointBody("ledger.example/log", 2**63 - 1, b"\xff" * 32),
        CheckpointBody("ledger.example/log", 10**30, bytes(range(32))),
        CheckpointBody("\u00e9t\u00e9.example/\U0001f600", 42, bytes(range(32, 64))),
        CheckpointBody("o", 5, bytes(32), ("one extension",)),
        CheckpointBody("o", 5, bytes(32), ("a", "b", "\u2014 c")),
    ],
)
def test_checkpoint_text_parse_round_trip(body: CheckpointBody) -> None:
    text = body.text()
    assert text.endswith("\n")
    lines = text.split("\n")
    assert lines[:3] == [body.origin, str(body.tree_size), base64.b64encode(body.root_hash).decode()]
    assert tuple(lines[3:-1]) == body.extensions
    assert CheckpointBody.parse(text) == body
    assert CheckpointBody.parse(text).text() == text


def test_signed_checkpoint_end_to_end() -> None:
    signer, verifier = _new_key("ledger.example/log")
    body = CheckpointBody("ledger.example/log", 1234, bytes(range(32)))
    opened = open_note(sign_note(body.text(), [signer]), [verifier])
    assert CheckpointBody.parse(opened.text) == body


_ROOT = base64.b64encode(bytes(32)).decode()
_URLSAFE_ROOT = base64.urlsafe_b64encode(bytes([0xFF]) * 32).decode()


@pytest.mark.parametrize(
    "text",
    [
        f"o\n01\n{_ROOT}\n",  # leading zero
        f"o\n00\n{_ROOT}\n",
        f"o\n007\n{_ROOT}\n",
        f"o\n-1\n{_ROOT}\n",
        f"o\n+1\n{_ROOT}\n",
        f"o\n 1\n{_ROOT}\n",
        f"o\n1 \n{_ROOT}\n",
        f"o\n1.0\n{_ROOT}\n",
        f"o\n1e3\n{_ROOT}\n",
        f"o\n0x10\n{_ROOT}\n",
        f"o\n1_000\n{_ROOT}\n",
        f"o\n\n{_ROOT}\n",  # empty size
        f"\n1\n{_ROOT}\n",  # empty origin
        "o\n1\nnot base64!\n",
        "o\n1\n\n",  # empty root
        f"o\n1\n{base64.b64encode(bytes(31)).decode()}\n",  # 31-byte root
        f"o\n1\n{base64.b64encode(bytes(33)).decode()}\n",  # 33-byte root
        f"o\n1\n{base64.b64encode(bytes(64)).decode()}\n",
        f"o\n1\n{_ROOT.rstrip('=')}\n",  # missing padding
        f"o\n1\n{_URLSAFE_ROOT}\n",  # URL-safe alphabet
        f"o\n1\n {_ROOT}\n",
        f"o\n1\n{_ROOT}",  # missing final newline
        f"o\n1\n{_ROOT}\next",  # extension without final newline
        "o\n1\n",  # no root line
        "o\n",
        "",
    ],
)
def test_checkpoint_parse_rejects_malformed_bodies(text: str) -> None:
    with pytest.raises(NoteError):
        CheckpointBody.parse(text)


@pytest.mark.parametrize("size", ["\u0661\u0662", "\u00b2", "\uff11", "\u09e7"])
def test_checkpoint_parse_rejects_non_ascii_digits(size: str) -> None:
    with pytest.raises(NoteError):
        CheckpointBody.parse(f"o\n{size}\n{_ROOT}\n")


@pytest.mark.parametrize("text", [f"o\n1\n{_ROOT}\n\n", f"o\n1\n{_ROOT}\next\n\n", f"o\n1\n{_ROOT}\n\next\n"])
def test_checkpoint_parse_rejects_empty_extension_lines(text: str) -> None:
    with pytest.raises(NoteError):
        CheckpointBody.parse(text)
