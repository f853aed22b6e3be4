"""``POST /api/v1/models/<name>/versions/<n>/registered-by``: a pipeline's token reports it registered a version.

The first trusted report wins; another account's later report is refused 409; people, tokens without the
scope, tokens that cannot see the model and a wrong run id are refused, and every refusal writes nothing.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from access.models import ServiceAccount
from access.services.service_accounts import service_account_create
from audit.models import Entry, PendingEntry
from governance.models import ModelVersion
from tests.access.helpers import grant
from tests.api.helpers import problem_of
from tests.catalog import Resources
from tests.personas import People

pytestmark = pytest.mark.django_db
TokenClient = Callable[..., APIClient]
URL = "/api/v1/models/fraud-detector/versions/1/registered-by"


def _written() -> int:
    return PendingEntry.objects.count() + Entry.objects.count()


@pytest.fixture
def v1(res: Resources) -> ModelVersion:
    version = ModelVersion.objects.get(model=res.model, version=1)
    version.run_id = "8c1e0f" * 5
    version.save(update_fields=["run_id"])
    return version


@pytest.fixture
def pipeline(people: People, res: Resources) -> ServiceAccount:
    account = service_account_create(actor=people.owner, name="pipeline")
    grant(people.infosec, account.user, res.model, "view_metadata")
    return account


def test_the_pipeline_that_registered_a_version_reports_it_once(
    people: People, v1: ModelVersion, pipeline: ServiceAccount, token_for: TokenClient
) -> None:
    client = token_for(["promotions:write"], account=pipeline)

    response = client.post(URL, {"run_id": v1.run_id}, format="json")
    again = client.post(URL, {"run_id": v1.run_id}, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {"model": "fraud-detector", "version": 1, "registered_by": f"user:{pipeline.user.pk}",
                               "registered_via": "api_token"}
    assert again.status_code == 200
    assert Entry.objects.filter(event_type="model.version_registrant_linked").count() + PendingEntry.objects.filter(
        event_type="model.version_registrant_linked").count() == 1
    detail = token_for(["models:read"], account=pipeline).get("/api/v1/models/fraud-detector/versions/1").json()
    assert (detail["registered_by"], detail["registered_via"]) == (f"user:{pipeline.user.pk}", "api_token")


def test_a_later_report_by_another_account_is_a_409_and_writes_nothing(
    people: People, res: Resources, v1: ModelVersion, pipeline: ServiceAccount, token_for: TokenClient
) -> None:
    assert token_for(["promotions:write"], account=pipeline).post(URL, {"run_id": v1.run_id},
                                                                   format="json").status_code == 200
    squatter = service_account_create(actor=people.infosec, name="squatter")
    grant(people.infosec2, squatter.user, res.model, "view_metadata")
    client = token_for(["promotions:write"], account=squatter)
    before = _written()

    response = client.post(URL, {"run_id": v1.run_id}, format="json")

    assert response.status_code == 409 and problem_of(response)["code"] == "conflict"
    assert _written() == before
    v1.refresh_from_db()
    assert v1.registered_by == pipeline.user


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("session", 403, "not_permitted"),  # a person is not a pipeline
        ("read-scope", 403, None),  # the token lacks promotions:write
        ("invisible", 404, "not_found"),  # a token that cannot see the model: same as unknown
        ("wrong-run", 400, "run_mismatch"),
        ("no-run", 400, None),
        ("extra-field", 400, None),
        ("unknown-version", 404, "not_found"),
    ],
)
def test_refused_reports_write_nothing(
    people: People, res: Resources, v1: ModelVersion, pipeline: ServiceAccount, token_for: TokenClient,
    case: str, status: int, code: str | None,
) -> None:
    url, body = URL, {"run_id": v1.run_id}
    client: Any = token_for(["promotions:write"], account=pipeline)
    if case == "session":
        client = APIClient()
        client.force_login(people.owner)
    elif case == "read-scope":
        client = token_for(["models:read"], account=pipeline)
    elif case == "invisible":
        client = token_for(["promotions:write"], account=service_account_create(actor=people.infosec, name="blind"))
    elif case == "wrong-run":
        body = {"run_id": "f" * 32}
    elif case == "no-run":
        body = {}
    elif case == "extra-field":
        body = {"run_id": v1.run_id, "registered_by": "user:1"}
    elif case == "unknown-version":
        url = URL.replace("/1/", "/99/")
    before = _written()

    response = client.post(url, body, format="json")

    assert response.status_code == status, response.content
    if code is not None:
        assert problem_of(response)["code"] == code
    assert _written() == before
    v1.refresh_from_db()
    assert v1.registered_by is None
