"""The attestation gate: what verifies and every way it refuses (governance.attestations, governance.policy).

Envelopes are signed by securesystemslib (tests/attestations.py); the Sigstore bundle is a real public-good
one verified offline against the trusted root sigstore-python ships. No mocks.
"""
from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from governance import attestations as A
from governance.policy import GateInput, PolicyError, evaluate_gate, parse_policy
from tests import attestations as att

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def _policy(signers: dict[str, Any], **gate: Any) -> Any:
    spec = {"type": "attestation", "predicate_type": att.SLSA, "signers": list(signers), **gate}
    return parse_policy({"approvals": [], "gates": [spec], "trusted_signers": signers})


def _run(policy: Any, documents: list[bytes], digest: str = DIGEST, root: Any = None) -> Any:
    from django.utils import timezone

    data = GateInput(metrics={}, description="", data_classification="internal",
                     environment_max_classification="internal", previous_environment=None,
                     in_previous_environment_since=None, now=timezone.now(), artifact_digest=digest,
                     attestations=tuple(A.parse_document(d) for d in documents),
                     trusted_signers=policy.trusted_signers, sigstore_trusted_root=root)
    return evaluate_gate(policy.gates[0], data)


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
def test_an_envelope_signed_by_the_trusted_key_for_this_digest_passes(kind: str) -> None:
    key = att.Key(kind)
    doc = att.attest(DIGEST, key)

    result = _run(_policy({"ci-release": key.trust()}), [doc])

    assert result.passed, result.detail
    assert result.observed == "sha256:" + A.hashlib.sha256(doc).hexdigest()
    assert result.attestations[0]["signer"] == "ci-release"
    assert result.as_dict()["attestations"][0]["reason"] == "verified"


def test_pae_is_what_securesystemslib_signs() -> None:
    from securesystemslib.dsse import Envelope

    assert Envelope(b"hello", "http://example.com/HelloWorld", {}).pae() == A.pae(
        "http://example.com/HelloWorld", b"hello")
    assert A.pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"  # the DSSE spec's test vector


def test_no_attestation_at_all_fails_naming_what_is_missing() -> None:
    result = _run(_policy({"ci-release": att.Key().trust()}), [])

    assert not result.passed
    assert result.detail == f"no attestation of type {att.SLSA} signed by ci-release for {DIGEST}"


def test_signed_by_an_untrusted_key_fails() -> None:
    trusted, stranger = att.Key(), att.Key("ecdsa")

    result = _run(_policy({"ci-release": trusted.trust()}), [att.attest(DIGEST, stranger)])

    assert not result.passed and "untrusted key" in result.detail


def test_a_key_trusted_for_staging_does_not_count_for_production() -> None:
    staging_key, production_key = att.Key(), att.Key()
    doc = att.attest(DIGEST, staging_key)
    staging = _policy({"ci-staging": staging_key.trust()})
    production = _policy({"ci-release": production_key.trust()})

    assert _run(staging, [doc]).passed
    assert not _run(production, [doc]).passed


def test_a_key_the_policy_knows_but_the_gate_does_not_accept_is_named() -> None:
    release, nightly = att.Key(), att.Key()
    policy = parse_policy({"gates": [{"type": "attestation", "predicate_type": att.SLSA, "signers": ["ci-release"]}],
                           "trusted_signers": {"ci-release": release.trust(), "ci-nightly": nightly.trust()}})

    result = _run(policy, [att.attest(DIGEST, nightly)])

    assert not result.passed and "signed by ci-nightly, which this gate does not accept" in result.detail


def test_an_edited_payload_does_not_verify() -> None:
    key = att.Key()
    env = json.loads(att.attest(OTHER, key))
    statement = json.loads(base64.b64decode(env["payload"]))
    statement["subject"][0]["digest"]["sha256"] = DIGEST.split(":")[1]  # re-point it at this version
    env["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()

    result = _run(_policy({"ci-release": key.trust()}), [json.dumps(env).encode()])

    assert not result.passed and "does not verify" in result.detail


def test_a_subject_digest_of_another_version_fails() -> None:
    key = att.Key()

    result = _run(_policy({"ci-release": key.trust()}), [att.attest(OTHER, key)])

    assert not result.passed and f"subject digest differs: the statement names {OTHER}" in result.detail


def test_a_version_without_a_digest_computed_here_cannot_pass() -> None:
    key = att.Key()

    result = _run(_policy({"ci-release": key.trust()}), [att.attest(DIGEST, key)], digest="")

    assert not result.passed and "no artifact digest" in result.detail


def test_another_predicate_type_does_not_satisfy_the_gate() -> None:
    key = att.Key()
    tests_passed = att.attest(DIGEST, key, predicate_type=att.TEST_RESULT, predicate=att.test_result_predicate())

    result = _run(_policy({"ci-release": key.trust()}), [tests_passed])

    assert not result.passed and f"predicate type {att.TEST_RESULT}" in result.detail


@pytest.mark.parametrize("outcome, allow_warned, passed", [
    ("PASSED", False, True), ("FAILED", False, False), ("WARNED", False, False), ("WARNED", True, True),
    ("FAILED", True, False),
])
def test_a_test_result_must_have_passed(outcome: str, allow_warned: bool, passed: bool) -> None:
    key = att.Key()
    extra = {"allow_warned": True} if allow_warned else {}
    policy = _policy({"ci-release": key.trust()}, predicate_type=att.TEST_RESULT, **extra)
    doc = att.attest(DIGEST, key, predicate_type=att.TEST_RESULT, predicate=att.test_result_predicate(outcome))

    result = _run(policy, [doc])

    assert result.passed is passed
    if not passed:
        assert f"test result '{outcome}'" in result.detail


def test_the_slsa_builder_must_be_allowed() -> None:
    key = att.Key()
    policy = _policy({"ci-release": key.trust()}, builder_ids=[att.GITHUB_HOSTED])

    good = _run(policy, [att.attest(DIGEST, key)])
    bad = _run(policy, [att.attest(DIGEST, key, predicate=att.slsa_predicate("https://evil.example/builder"))])

    assert good.passed
    assert not bad.passed and "SLSA builder 'https://evil.example/builder' is not an allowed builder" in bad.detail


def test_one_good_attestation_among_bad_ones_passes_and_each_is_shown() -> None:
    key = att.Key()
    docs = [att.attest(OTHER, key), att.attest(DIGEST, att.Key()), att.attest(DIGEST, key)]

    result = _run(_policy({"ci-release": key.trust()}), docs)

    assert result.passed
    assert [a["passed"] for a in result.attestations] == [False, False, True]


# --- Sigstore bundles, verified offline -----------------------------------------------------------------

GITHUB = {"sigstore": {"issuer": att.BUNDLE_ISSUER, "identity": att.BUNDLE_IDENTITY}}


@pytest.fixture(scope="module")
def root() -> Any:
    return A.load_trusted_root(str(att.TRUSTED_ROOT))


def test_a_real_github_bundle_verifies_offline_against_the_trusted_root(root: Any) -> None:
    policy = _policy({"gh-release": GITHUB}, builder_ids=[att.BUNDLE_IDENTITY])

    result = _run(policy, [att.bundle_bytes()], digest=att.BUNDLE_DIGEST, root=root)

    assert result.passed, result.detail
    assert result.attestations[0]["signer"] == "gh-release"


def test_a_bundle_from_another_workflow_identity_is_not_allowed(root: Any) -> None:
    other = {"sigstore": {"issuer": att.BUNDLE_ISSUER,
                          "identity": "https://github.com/acme/fraud/.github/workflows/train.yml@refs/heads/main"}}

    result = _run(_policy({"gh-release": other}), [att.bundle_bytes()], digest=att.BUNDLE_DIGEST, root=root)

    assert not result.passed
    assert f"Sigstore identity {att.BUNDLE_IDENTITY} (issuer {att.BUNDLE_ISSUER}) not allowed" in result.detail


def test_a_bundle_whose_statement_was_edited_does_not_verify(root: Any) -> None:
    bundle = json.loads(att.bundle_bytes())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["subject"][0]["digest"]["sha256"] = DIGEST.split(":")[1]
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()

    result = _run(_policy({"gh-release": GITHUB}), [json.dumps(bundle).encode()], root=root)

    assert not result.passed and "does not verify against the trusted root" in result.detail


def test_a_bundle_for_other_bytes_does_not_bind_this_version(root: Any) -> None:
    result = _run(_policy({"gh-release": GITHUB}), [att.bundle_bytes()], digest=DIGEST, root=root)

    assert not result.passed and "subject digest differs" in result.detail


def test_without_a_trusted_root_a_bundle_never_verifies() -> None:
    result = _run(_policy({"gh-release": GITHUB}), [att.bundle_bytes()], digest=att.BUNDLE_DIGEST, root=None)

    assert not result.passed and "SIGSTORE_TRUSTED_ROOT" in result.detail


def test_an_unreadable_trusted_root_is_refused_with_the_reason(tmp_path: Any) -> None:
    bad = tmp_path / "root.json"
    bad.write_text("{}")

    with pytest.raises(A.AttestationError, match=r"not a valid trusted_root\.json"):
        A.load_trusted_root(str(bad))
    with pytest.raises(A.AttestationError, match="cannot be read"):
        A.load_trusted_root(str(tmp_path / "missing.json"))


def test_an_email_identity_is_never_shown() -> None:
    assert A._shown_identity("alice@example.com") == "an e-mail identity (withheld)"


# --- the policy language -----------------------------------------------------------------------------------


@pytest.mark.parametrize("signers, gate, message", [
    ({"ci": {"public_key": "not a key"}}, {}, "PEM public key"),
    ({"ci": {"public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}}, {}, "not a readable"),
    ({"CI Release": {"public_key": "x"}}, {}, "signer name"),
    ({"ci": {"sigstore": {"issuer": "http://insecure", "identity": "x"}}}, {}, "https URL"),
    ({"ci": {"sigstore": {"issuer": att.BUNDLE_ISSUER}}}, {}, "'sigstore' must be"),
    ({"ci": {}}, {}, "'public_key'"),
    ({"ci": "ed25519"}, {}, "must be an object"),
])
def test_malformed_trusted_signers_are_refused(signers: dict[str, Any], gate: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        _policy(signers, **gate)


def test_an_rsa_key_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    with pytest.raises(PolicyError, match="Ed25519 or ECDSA P-256"):
        _policy({"ci": {"public_key": pem}})


@pytest.mark.parametrize("gate, message", [
    ({"predicate_type": att.SLSA, "signers": ["nobody"]}, "not in 'trusted_signers'"),
    ({"predicate_type": att.SLSA, "signers": []}, "'signers' must list"),
    ({"predicate_type": "slsa", "signers": ["ci"]}, "predicate's URI"),
    ({"predicate_type": att.TEST_RESULT, "signers": ["ci"], "builder_ids": ["x"]}, "applies to"),
    ({"predicate_type": att.SLSA, "signers": ["ci"], "allow_warned": True}, "applies to"),
    ({"predicate_type": att.SLSA, "signers": ["ci"], "threshold": 2}, "unknown key"),
])
def test_malformed_attestation_gates_are_refused(gate: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy({"gates": [{"type": "attestation", **gate}], "trusted_signers": {"ci": att.Key().trust()}})
