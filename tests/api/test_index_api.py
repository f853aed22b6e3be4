"""``GET /api/v1/``: the API's index names its collections, the schema and the docs page, and no data."""
from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_the_index_answers_anyone_with_the_collections_schema_and_docs(as_user, people):
    # given: nobody signed in, and a person with a session
    for client in (as_user(None), as_user(people.outsider)):
        # when
        response = client.get("/api/v1/")
        # then
        assert response.status_code == 200
        body = response.json()
        assert body["version"] == "v1"
        assert body["schema"] == reverse("api-schema") and body["docs"] == reverse("api-docs")
        assert body["resources"]["ledger-entries"] == "/api/v1/ledger/entries"
        assert body["resources"]["promotions"] == "/api/v1/promotions"
        assert body["resources"]["whoami"] == "/api/v1/whoami"
        # Only routes without parameters, and never the index itself.
        assert all("<" not in url and url.startswith("/api/v1/") for url in body["resources"].values())
        assert "index" not in body["resources"] and "schema" not in body["resources"]


def test_every_listed_resource_exists_and_still_asks_for_credentials(as_user):
    client = as_user(None)
    resources = client.get("/api/v1/").json()["resources"]
    for name, url in resources.items():
        response = client.get(url)
        # Listed routes exist (no 404) and the index opened none of them (no data without credentials).
        assert response.status_code in (401, 403, 405), (name, response.status_code)
