"""Attestations as the real tools make them, for the attestation tests.

DSSE envelopes are signed by securesystemslib's ``CryptoSigner`` and ``dsse.Envelope`` (the in-toto/TUF
projects' own signer, a second implementation of DSSE next to ``governance.attestations``), around
statements built by the ``in-toto-attestation`` bindings. Predicates are shaped as GitHub's
actions/attest-build-provenance writes SLSA provenance v1 and as the in-toto test-result v0.1 spec
example. The Sigstore bundle is a real public-good one (tests/governance/attestation_fixtures/README.md).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from google.protobuf import json_format
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner

FIXTURES = Path(__file__).parent / "governance" / "attestation_fixtures"
BUNDLE = FIXTURES / "foundry-stable.sigstore.json"
TRUSTED_ROOT = FIXTURES / "sigstore-public-good.trusted_root.json"
#: The first subject of the real bundle (foundry's ``anvil`` binary) and who signed it.
BUNDLE_DIGEST = "sha256:ddd0a5974451642404b6a3485f95eb35ca5fb58e4a80ac22004ca3e3229aabc0"
BUNDLE_ISSUER = "https://token.actions.githubusercontent.com"
BUNDLE_IDENTITY = "https://github.com/foundry-rs/foundry/.github/workflows/release.yml@refs/tags/stable"
SLSA = "https://slsa.dev/provenance/v1"
TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"
GITHUB_HOSTED = "https://github.com/actions/runner/github-hosted"


class Key:
    """A CI signing key: the private half signs through securesystemslib, the PEM goes into a policy."""

    def __init__(self, kind: str = "ed25519") -> None:
        private: Any = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else ec.generate_private_key(
            ec.SECP256R1())
        self.signer = CryptoSigner(private)
        self.pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def trust(self) -> dict[str, str]:
        return {"public_key": self.pem, "keyid": self.signer.public_key.keyid}


def slsa_predicate(builder: str = GITHUB_HOSTED) -> dict[str, Any]:
    """SLSA provenance v1 as actions/attest-build-provenance writes it."""
    return {
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"ref": "refs/heads/main", "repository": "https://github.com/acme/fraud",
                                                "path": ".github/workflows/train.yml"}},
            "internalParameters": {"github": {"event_name": "push", "repository_id": "123456789",
                                              "repository_owner_id": "987654", "runner_environment": "github-hosted"}},
            "resolvedDependencies": [{"uri": "git+https://github.com/acme/fraud@refs/heads/main",
                                      "digest": {"gitCommit": "1ac93ce21ee526b36fd154b9058d97dfaa424c50"}}],
        },
        "runDetails": {"builder": {"id": builder},
                       "metadata": {"invocationId": "https://github.com/acme/fraud/actions/runs/10313983218/attempts/1"}},
    }


def test_result_predicate(result: str = "PASSED") -> dict[str, Any]:
    """The in-toto test-result v0.1 predicate (the spec's example shape)."""
    return {"result": result, "configuration": [{"name": "pytest.ini", "digest": {"sha256": "ab" * 32}}],
            "url": "https://github.com/acme/fraud/actions/runs/10313983218",
            "passedTests": ["test_auc", "test_fairness"], "warnedTests": [],
            "failedTests": [] if result == "PASSED" else ["test_fairness"]}


def statement(digest: str, predicate_type: str = SLSA, predicate: dict[str, Any] | None = None) -> bytes:
    """An in-toto Statement v1 about the model directory whose digest is ``digest`` (``sha256:<hex>``)."""
    algorithm, _, value = digest.partition(":")
    built = Statement([ResourceDescriptor(name="model", digest={algorithm: value}).pb], predicate_type,
                      predicate if predicate is not None else slsa_predicate())
    built.validate()
    return json_format.MessageToJson(built.pb, indent=None).encode()


def envelope(payload: bytes, *keys: Key) -> bytes:
    """A DSSE envelope signed by ``keys``, serialised as in-toto tools write it."""
    env = Envelope(payload=payload, payload_type="application/vnd.in-toto+json", signatures={})
    for key in keys:
        env.sign(key.signer)
    return json.dumps(env.to_dict()).encode()


def attest(digest: str, *keys: Key, predicate_type: str = SLSA, predicate: dict[str, Any] | None = None) -> bytes:
    return envelope(statement(digest, predicate_type, predicate), *keys)


def bundle_bytes() -> bytes:
    return BUNDLE.read_bytes()
