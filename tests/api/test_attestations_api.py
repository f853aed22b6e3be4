"""``/api/v1/models/<name>/versions/<n>/attestations``: a pipeline uploads CI attestations; people list them.

Uploads are the documents the real tools write (tests/attestations.py). Every refusal writes nothing.
"""
from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from access.models import ServiceAccount
from access.services.service_accounts import service_account_create
from audit.models import Entry, PendingEntry
from governance.models import Attestation, ModelVersion
from tests import attestations as att
from tests.access.helpers import grant
from tests.api.helpers import problem_of
from tests.catalog import Resources
from tests.personas import People

pytestmark = pytest.mark.django_db
TokenClient = Callable[..., APIClient]
URL = "/api/v1/models/fraud-detector/versions/1/attestations"


def _written() -> int:
    return PendingEntry.objects.count() + Entry.objects.count() + Attestation.objects.count()


def _entries(event_type: str) -> list[dict]:
    return [json.loads(e.payload_json) for e in PendingEntry.objects.filter(event_type=event_type)]


@pytest.fixture
def v1(res: Resources) -> ModelVersion:
    version = ModelVersion.objects.get(model=res.model, version=1)
    version.artifact_digest = "sha256:" + "cd" * 32
    version.save(update_fields=["artifact_digest"])
    return version


@pytest.fixture
def pipeline(people: People, res: Resources) -> ServiceAccount:
    account = service_account_create(actor=people.owner, name="pipeline")
    grant(people.infosec, account.user, res.model, "view_metadata")
    return account


def _post(client: APIClient, body: bytes, content_type: str = "application/json") -> object:
    return client.generic("POST", URL, body, content_type=content_type)


def test_a_pipeline_uploads_a_signed_envelope_once_and_the_ledger_says_what_it_claims(
    v1: ModelVersion, pipeline: ServiceAccount, token_for: TokenClient
) -> None:
    client = token_for(["attestations:write"], account=pipeline)
    key = att.Key()
    body = att.attest(v1.artifact_digest, key)

    first = _post(client, body)
    again = _post(client, body)

    assert first.status_code == 201, first.content
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    out = first.json()
    assert out["kind"] == "dsse" and out["predicate_type"] == att.SLSA
    assert out["subject_digests"] == [v1.artifact_digest] and out["binds_version"] is True
    assert out["key_ids"] == [key.signer.public_key.keyid]
    assert Attestation.objects.get().document.encode() == body  # stored exactly as sent
    [payload] = _entries("model.attestation_added")
    assert payload["attestation"] == out["attestation"] and payload["key_ids"] == out["key_ids"]
    assert "pipeline" not in json.dumps(payload)  # accounts only as user:<id>, never a name


def test_a_real_sigstore_bundle_is_accepted_with_its_media_type(
    v1: ModelVersion, pipeline: ServiceAccount, token_for: TokenClient
) -> None:
    client = token_for(["attestations:write"], account=pipeline)

    response = _post(client, att.bundle_bytes(), "application/vnd.dev.sigstore.bundle.v0.3+json")

    assert response.status_code == 201, response.content
    out = response.json()
    assert out["kind"] == "sigstore_bundle" and att.BUNDLE_DIGEST in out["subject_digests"]
    assert out["binds_version"] is False  # foundry's binaries, not fraud-detector v1
    assert out["key_ids"][0].startswith("x509-sha256:")  # the certificate's fingerprint, not its identity


def test_people_who_see_the_model_list_its_attestations_with_bounded_queries(
    people: People, v1: ModelVersion, pipeline: ServiceAccount, token_for: TokenClient,
    as_user: Callable[..., APIClient], django_assert_max_num_queries: Callable[..., object],
) -> None:
    client = token_for(["attestations:write"], account=pipeline)
    for _ in range(3):
        assert _post(client, att.attest(v1.artifact_digest, att.Key())).status_code == 201
    reader = as_user(people.auditor)

    with django_assert_max_num_queries(12):  # type: ignore[operator]
        response = reader.get(URL)

    assert response.status_code == 200
    assert response.json()["count"] == 3


@pytest.mark.parametrize("body, needle", [
    (b"not json at all", "not UTF-8 JSON"),
    ('{"payloadType": "application/vnd.in-toto+json"}'.encode("utf-16"), "not UTF-8 JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"hello": "world"}', "neither a DSSE envelope"),
    (json.dumps({"payloadType": "application/vnd.in-toto+json", "payload": "e30=", "signatures": []}).encode(),
     "unsigned"),
    (json.dumps({"payloadType": "text/plain", "payload": "aGk=", "signatures": [{"sig": "AA=="}]}).encode(),
     "payloadType"),
    (json.dumps({"payloadType": "application/vnd.in-toto+json", "payload": "!!!", "signatures": [{"sig": "AA=="}]}
                ).encode(), "base64"),
    (json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "messageSignature": {}}).encode(),
     "blob signatures"),
    (b"", "request body"),
])
def test_garbage_is_refused_400_and_nothing_is_written(
    pipeline: ServiceAccount, token_for: TokenClient, body: bytes, needle: str
) -> None:
    client = token_for(["attestations:write"], account=pipeline)
    before = _written()

    response = _post(client, body)

    assert response.status_code == 400, response.content
    assert needle in problem_of(response)["detail"]
    assert _written() == before


def test_a_statement_of_another_type_than_in_toto_v1_is_refused(
    v1: ModelVersion, pipeline: ServiceAccount, token_for: TokenClient
) -> None:
    client = token_for(["attestations:write"], account=pipeline)
    payload = json.dumps({"_type": "https://in-toto.io/Statement/v0.1", "subject": [], "predicateType": "x"}).encode()

    response = _post(client, att.envelope(payload, att.Key()))

    assert response.status_code == 400 and "_type" in problem_of(response)["detail"]


def test_an_oversized_body_is_refused_400_without_being_stored(
    settings: object, v1: ModelVersion, pipeline: ServiceAccount, token_for: TokenClient
) -> None:
    settings.ATTESTATION_MAX_BYTES = 2048  # type: ignore[attr-defined]
    client = token_for(["attestations:write"], account=pipeline)
    big = att.attest(v1.artifact_digest, att.Key(), predicate={"runDetails": {"builder": {"id": "x" * 5000}}})
    before = _written()

    response = _post(client, big)

    assert response.status_code == 400
    assert problem_of(response)["code"] == "too_large"
    assert _written() == before


def test_a_token_without_the_scope_is_refused_403(
    v1: ModelVersion, pipeline: ServiceAccount, token_for: TokenClient
) -> None:
    client = token_for(["models:read", "promotions:write"], account=pipeline)
    before = _written()

    response = _post(client, att.attest(v1.artifact_digest, att.Key()))

    assert response.status_code == 403
    assert _written() == before


def test_a_model_the_token_cannot_see_answers_404_like_a_missing_one(
    people: People, v1: ModelVersion, token_for: TokenClient
) -> None:
    blind = service_account_create(actor=people.owner, name="blind")
    client = token_for(["attestations:write", "models:read"], account=blind)
    before = _written()

    hidden = _post(client, att.attest(v1.artifact_digest, att.Key()))
    missing = client.generic("POST", "/api/v1/models/no-such-model/versions/1/attestations", b"{}",
                             content_type="application/json")

    assert hidden.status_code == 404 and missing.status_code == 404
    assert problem_of(hidden)["detail"] == problem_of(missing)["detail"]
    assert _written() == before
