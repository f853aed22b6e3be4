"""``/api/v1/datasets…`` and ``/api/v1/lineage``: the catalog through the API, visibility and classification."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from access.models import Dataset, DatasetField
from audit.models import PendingEntry
from governance.models import Lineage, ModelVersion
from tests.access.helpers import grant, writes_nothing
from tests.api.helpers import problem_of
from tests.catalog import Resources
from tests.personas import People

pytestmark = pytest.mark.django_db

UserClient = Callable[[User | None], APIClient]
TokenClient = Callable[..., APIClient]
BASE = "/api/v1/datasets"


def _names(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [d["name"] for d in response.json()["results"]]


ALL = ["card-transactions", "customers", "fx-rates", "kyc-documents", "payments-internal"]


# --- list and detail -----------------------------------------------------------------------------------------


def test_the_list_shows_what_each_persona_may_see(people: People, res: Resources, as_user: UserClient) -> None:
    grant(people.owner, people.requester, res.internal, "read_data")
    for who in (people.owner, people.steward, people.infosec, people.auditor):
        assert _names(as_user(who).get(BASE)) == ALL
    assert _names(as_user(people.requester).get(BASE)) == ["payments-internal"]
    assert _names(as_user(people.outsider).get(BASE)) == []
    assert as_user(None).get(BASE).status_code in (401, 403)


def test_list_filters(people: People, res: Resources, as_user: UserClient) -> None:
    client = as_user(people.steward)
    assert _names(client.get(BASE, {"level": "confidential"})) == ["card-transactions", "customers"]
    # a field's PII category counts, not only the dataset's own
    assert _names(client.get(BASE, {"pii": "card_pan"})) == ["card-transactions"]
    assert _names(client.get(BASE, {"pii": "email"})) == ["customers"]
    assert _names(client.get(BASE, {"owner": "olga", "name": "kyc"})) == ["kyc-documents"]
    assert _names(client.get(BASE, {"owner": "nobody"})) == []
    for bad in ({"level": "secret"}, {"pii": "shoe_size"}, {"colour": "red"}):
        response = client.get(BASE, bad)
        assert response.status_code == 400
        assert list(bad) == [e["field"] for e in problem_of(response)["errors"]]


def test_the_list_has_bounded_queries(people: People, res: Resources, as_user: UserClient,
                                      django_assert_max_num_queries: Any) -> None:
    for i in range(20):
        d = Dataset.objects.create(name=f"extra-{i:02}", owner=people.owner)
        DatasetField.objects.create(dataset=d, name="email", level="confidential", pii_categories=["email"])
    client = as_user(people.requester)
    grant(people.owner, people.team, res.internal)
    with django_assert_max_num_queries(8):
        assert len(_names(client.get(BASE, {"pii": "email"}))) == 0
    client = as_user(people.steward)
    with django_assert_max_num_queries(8):
        assert len(_names(client.get(BASE))) == 25


def test_detail_has_fields_levels_pii_and_the_models_trained_on_it(
    people: People, res: Resources, as_user: UserClient,
) -> None:
    # given: version 1 of the model was trained on the PCI dataset
    version = ModelVersion.objects.get(model=res.model, version=1)
    Lineage.objects.create(version=version, dataset=res.pci, role="training", source="mlflow")
    # when
    response = as_user(people.owner).get(f"{BASE}/card-transactions")
    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["level"], body["effective_level"], body["owner"]) == ("confidential", "confidential", "olga")
    assert body["pii_categories"] == [] and body["effective_pii_categories"] == ["card_pan"]
    assert [f["name"] for f in body["fields"]] == ["pan"]
    assert body["fields"][0]["pii_categories"] == ["card_pan"]
    assert body["models"] == [{"model": "fraud-detector", "version": 1, "role": "training", "source": "mlflow",
                               "data_classification": "confidential"}]


def test_an_invisible_dataset_is_404_like_a_missing_one(people: People, res: Resources, as_user: UserClient,
                                                        token_for: TokenClient) -> None:
    for path in ("customers", "customers/fields", "no-such"):
        response = as_user(people.outsider).get(f"{BASE}/{path}")
        assert response.status_code == 404
        assert problem_of(response)["code"] == "not_found"
    token = token_for(["access:read"])
    assert token.get(f"{BASE}/customers").status_code == 404  # the service account has no grant on it
    grant(people.owner, token.service_account.user, res.confidential, "read_data")
    assert token.get(f"{BASE}/customers").status_code == 200


def test_scopes_govern_tokens(people: People, res: Resources, token_for: TokenClient) -> None:
    reader = token_for(["access:check"])
    response = reader.get(BASE)
    assert response.status_code == 403
    assert "access:read" in problem_of(response)["detail"]
    read_only = token_for(["access:read"])
    assert read_only.get(BASE).status_code == 200
    with writes_nothing():
        response = read_only.post(BASE, {"name": "x", "owner": "olga"}, format="json")
    assert response.status_code == 403
    assert "access:write" in problem_of(response)["detail"]


# --- create and classify -------------------------------------------------------------------------------------


def test_a_steward_registers_a_dataset(people: People, as_user: UserClient) -> None:
    response = as_user(people.steward).post(BASE, {"name": "web-logs", "owner": "olga",
                                                   "source_uri": "s3://lake/web/"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["owner"], body["classified"], body["level"]) == ("web-logs", "olga", False, "public")
    assert PendingEntry.objects.filter(event_type="dataset.created").count() == 1


@pytest.mark.parametrize("who, body, status, field", [
    ("owner", {"name": "web-logs", "owner": "olga"}, 403, None),  # not a steward
    ("outsider", {"name": "web-logs", "owner": "olga"}, 403, None),
    ("auditor", {"name": "web-logs", "owner": "olga"}, 403, None),
    ("steward", {"name": "web-logs", "owner": "nobody"}, 400, "owner"),
    ("steward", {"name": "web-logs", "owner": "olga", "level": "public"}, 400, "level"),  # unknown field
    ("steward", {"name": "x" * 201, "owner": "olga"}, 400, "name"),
    ("steward", {"name": "customers", "owner": "olga"}, 400, None),  # duplicate
    ("steward", ["not", "an", "object"], 400, None),
])
def test_refused_dataset_creation_writes_nothing(people: People, res: Resources, as_user: UserClient,
                                                 who: str, body: Any, status: int, field: str | None) -> None:
    with writes_nothing():
        response = as_user(getattr(people, who)).post(BASE, body, format="json")
    assert response.status_code == status, response.content
    problem = problem_of(response)
    if field:
        assert field in {e["field"] for e in problem["errors"]}
    assert Dataset.objects.count() == 5


def test_a_steward_classifies_a_dataset_and_its_fields(people: People, res: Resources, as_user: UserClient) -> None:
    client = as_user(people.steward)
    # when
    response = client.post(f"{BASE}/fx-rates/classification",
                           {"level": "internal", "pii_categories": [], "reason": "market data we pay for"},
                           format="json")
    # then
    assert response.status_code == 200, response.content
    assert (response.json()["level"], response.json()["classified_by"]) == ("internal", "sam")
    # a new field raises the effective level
    response = client.post(f"{BASE}/fx-rates/fields", {
        "name": "trader_email", "level": "confidential", "pii_categories": ["email"], "reason": "who traded"},
        format="json")
    assert response.status_code == 201, response.content
    detail = client.get(f"{BASE}/fx-rates").json()
    assert (detail["level"], detail["effective_level"]) == ("internal", "confidential")
    assert detail["effective_pii_categories"] == ["email"]
    # adding it again is refused: reclassify it at its own URL
    with writes_nothing():
        again = client.post(f"{BASE}/fx-rates/fields", {
            "name": "trader_email", "level": "restricted", "pii_categories": ["email"], "reason": "x"},
            format="json")
    assert again.status_code == 400
    response = client.post(f"{BASE}/fx-rates/fields/trader_email/classification",
                           {"level": "restricted", "pii_categories": ["email"], "reason": "regulator says so"},
                           format="json")
    assert response.status_code == 200, response.content
    assert client.get(f"{BASE}/fx-rates").json()["effective_level"] == "restricted"
    assert [f["name"] for f in client.get(f"{BASE}/fx-rates/fields").json()] == ["trader_email"]
    assert PendingEntry.objects.filter(event_type="dataset.field_classified").count() == 2


@pytest.mark.parametrize("who, path, body, status", [
    ("steward", "fx-rates/classification", {"level": "secret", "pii_categories": [], "reason": "x"}, 400),
    ("steward", "fx-rates/classification", {"level": "public", "pii_categories": ["email"], "reason": "x"}, 400),
    ("steward", "fx-rates/classification", {"level": "public", "pii_categories": ["shoe"], "reason": "x"}, 400),
    ("steward", "fx-rates/classification", {"level": "public", "reason": ""}, 400),
    ("steward", "fx-rates/classification", {"level": "public", "reason": "x", "by": "sam"}, 400),
    ("owner", "fx-rates/classification", {"level": "internal", "reason": "mine"}, 403),  # visible, not a steward
    ("auditor", "fx-rates/classification", {"level": "internal", "reason": "x"}, 403),
    ("outsider", "fx-rates/classification", {"level": "internal", "reason": "x"}, 404),
    ("steward", "no-such/classification", {"level": "internal", "reason": "x"}, 404),
    ("steward", "card-transactions/fields/nope/classification", {"level": "internal", "reason": "x"}, 404),
    ("owner", "card-transactions/fields/pan/classification", {"level": "restricted", "reason": "x"}, 403),
    ("steward", "card-transactions/fields", {"level": "internal", "reason": "x"}, 400),  # no name
])
def test_refused_classification_writes_nothing(people: People, res: Resources, as_user: UserClient, who: str,
                                               path: str, body: dict[str, Any], status: int) -> None:
    with writes_nothing():
        response = as_user(getattr(people, who)).post(f"{BASE}/{path}", body, format="json")
    assert response.status_code == status, response.content
    problem_of(response)
    assert Dataset.objects.get(name="fx-rates").classified_at is None


def test_a_token_with_access_write_is_still_bound_by_roles(people: People, res: Resources,
                                                           token_for: TokenClient) -> None:
    client = token_for(["access:write", "access:read"])
    grant(people.owner, client.service_account.user, res.public, "read_data")
    with writes_nothing():
        response = client.post(f"{BASE}/fx-rates/classification", {"level": "internal", "reason": "x"},
                               format="json")
    assert response.status_code == 403


# --- lineage ------------------------------------------------------------------------------------------------


def test_lineage_list_and_declare(people: People, res: Resources, as_user: UserClient) -> None:
    # given
    version = ModelVersion.objects.get(model=res.model, version=2)
    # when: the model's owner declares it
    response = as_user(people.owner).post("/api/v1/lineage", {
        "model": "fraud-detector", "version": 2, "dataset": "customers", "role": "training"}, format="json")
    # then
    assert response.status_code == 201, response.content
    assert response.json()["source"] == "declared"
    version.refresh_from_db()
    assert version.data_classification == "confidential"  # raised from internal by its data
    assert PendingEntry.objects.filter(event_type="lineage.linked").count() == 1
    # declaring it again is a 200 that records nothing
    with writes_nothing():
        again = as_user(people.steward).post("/api/v1/lineage", {
            "model": "fraud-detector", "version": 2, "dataset": "customers"}, format="json")
    assert again.status_code == 200
    # listing
    rows = as_user(people.owner).get("/api/v1/lineage", {"model": "fraud-detector"}).json()["results"]
    assert [(r["version"], r["dataset"]) for r in rows] == [(2, "customers")]
    assert as_user(people.owner).get("/api/v1/lineage", {"dataset": "fx-rates"}).json()["results"] == []
    assert as_user(people.outsider).get("/api/v1/lineage").json()["results"] == []


@pytest.mark.parametrize("who, body, status, field", [
    ("requester", {"model": "fraud-detector", "version": 2, "dataset": "customers"}, 400, "version"),  # invisible
    ("auditor", {"model": "fraud-detector", "version": 2, "dataset": "customers"}, 403, None),
    ("steward", {"model": "fraud-detector", "version": 9, "dataset": "customers"}, 400, "version"),
    ("steward", {"model": "fraud-detector", "version": 2, "dataset": "nope"}, 400, "dataset"),
    ("steward", {"model": "fraud-detector", "version": 2, "dataset": "customers", "role": "x"}, 400, "role"),
    ("steward", {"model": "fraud-detector", "version": 2, "dataset": "customers", "source": "mlflow"}, 400,
     "source"),
])
def test_refused_lineage_writes_nothing(people: People, res: Resources, as_user: UserClient, who: str,
                                        body: dict[str, Any], status: int, field: str | None) -> None:
    with writes_nothing():
        response = as_user(getattr(people, who)).post("/api/v1/lineage", body, format="json")
    assert response.status_code == status, response.content
    if field:
        assert field in {e["field"] for e in problem_of(response)["errors"]}
    assert Lineage.objects.count() == 0


def test_lineage_list_has_bounded_queries(people: People, res: Resources, as_user: UserClient,
                                          django_assert_max_num_queries: Any) -> None:
    from governance.models import RegisteredModel

    for i in range(10):
        model = RegisteredModel.objects.create(name=f"m{i}", owner=people.owner)
        version = ModelVersion.objects.create(model=model, version=1)
        Lineage.objects.create(version=version, dataset=res.public)
    client = as_user(people.steward)
    with django_assert_max_num_queries(6):
        response = client.get("/api/v1/lineage", {"dataset": "fx-rates"})
    assert response.json()["count"] == 10
