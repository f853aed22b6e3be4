"""The attestation gate inside a promotion: evidence names the reason, an upload re-evaluates pending
requests, a replay onto another version fails, and the console shows each attestation.

Real documents (tests/attestations.py); the policy is set through the ORM (the policy path is not under test).
"""
from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from governance.models import ModelVersion, PromotionPolicy, PromotionRequest
from governance.services.attestations import attestation_add
from governance.services.promotions import promotion_request
from tests import attestations as att
from tests.governance.helpers import make_deployed
from tests.personas import People
from tests.promotions import Gov

pytestmark = pytest.mark.django_db


@pytest.fixture
def release_key() -> att.Key:
    return att.Key("ecdsa")


@pytest.fixture
def staging_gated(gov: Gov, release_key: att.Key) -> PromotionPolicy:
    policy = PromotionPolicy.objects.get(environment=gov.staging, model=None)
    rules: dict[str, Any] = dict(policy.rules)
    rules["gates"] = [*rules.get("gates", []), {"type": "attestation", "predicate_type": att.SLSA,
                                                "signers": ["ci-release"], "builder_ids": [att.GITHUB_HOSTED]}]
    rules["trusted_signers"] = {"ci-release": release_key.trust()}
    policy.rules = rules
    policy.save(update_fields=["rules"])
    return policy


def _gate(request: PromotionRequest) -> dict[str, Any]:
    request.refresh_from_db()
    return next(g for g in request.evidence["gates"] if g["type"] == "attestation")


def test_the_gate_fails_with_the_reason_then_an_upload_makes_it_pass(
    people: People, gov: Gov, staging_gated: PromotionPolicy, release_key: att.Key
) -> None:
    request = promotion_request(actor=people.owner, version=gov.v2, environment=gov.staging, reason="ship it")
    before = _gate(request)
    digest_before = request.evidence_digest

    attestation_add(actor=people.owner, version=gov.v2, document=att.attest(gov.v2.artifact_digest, release_key))

    after = _gate(request)
    assert before["passed"] is False
    assert before["detail"] == f"no attestation of type {att.SLSA} signed by ci-release for {gov.v2.artifact_digest}"
    assert after["passed"] is True and after["attestations"][0]["signer"] == "ci-release"
    assert request.evidence_digest != digest_before  # approvals given before the attestation are stale


def test_an_envelope_replayed_onto_another_version_does_not_pass_there(
    people: People, gov: Gov, staging_gated: PromotionPolicy, release_key: att.Key
) -> None:
    ModelVersion.objects.filter(pk=gov.v1.pk).update(artifact_digest="sha256:" + "ef" * 32)
    envelope = att.attest(gov.v2.artifact_digest, release_key)
    attestation_add(actor=people.owner, version=gov.v2, document=envelope)
    gov.v1.refresh_from_db()
    make_deployed(gov.v1, gov.dev, requested_by=people.owner)
    request = promotion_request(actor=people.owner, version=gov.v1, environment=gov.staging, reason="older one")

    attestation_add(actor=people.owner, version=gov.v1, document=envelope)  # the same bytes, on v1

    gate = _gate(request)
    assert gate["passed"] is False
    assert "subject digest differs" in gate["detail"]


def test_the_console_shows_each_attestation_with_its_outcome(
    people: People, gov: Gov, staging_gated: PromotionPolicy, release_key: att.Key,
    client: Client,
) -> None:
    request = promotion_request(actor=people.owner, version=gov.v2, environment=gov.staging, reason="ship it")
    attestation_add(actor=people.owner, version=gov.v2, document=att.attest(gov.v2.artifact_digest, release_key))
    attestation_add(actor=people.owner, version=gov.v2, document=att.attest(gov.v2.artifact_digest, att.Key()))
    client.force_login(people.approver)

    page = client.get(f"/console/approvals/requests/{request.pk}/")
    model_page = client.get(f"/console/models/{gov.model.pk}/")

    html = page.content.decode()
    assert page.status_code == 200
    assert "signer ci-release" in html and "signer none trusted" in html
    assert "untrusted key" in html
    model_html = model_page.content.decode()
    assert model_page.status_code == 200 and model_html.count(att.SLSA) >= 2
    assert "this version" in model_html
