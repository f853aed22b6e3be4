"""The console page of Kubernetes admission decisions, and the environments page linking to it."""
from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from governance.models import AdmissionDecision, Environment, EnvironmentNamespace
from tests.personas import People

pytestmark = pytest.mark.django_db

URL = "/console/admission/"


def decision(env: Environment, namespace: str, *, allowed: bool, rule: str, model: str = "fraud-detector",
             version: int = 3, count: int = 1) -> AdmissionDecision:
    """A decision row as governance.services.admission writes it (ORM set-up: the recording is tested in
    tests/governance/test_admission_webhook.py)."""
    now = timezone.now()
    return AdmissionDecision.objects.create(
        key=f"{namespace}-{rule}-{model}-{version}", environment=env, namespace=namespace, kind="Deployment",
        name="fraud-api", model=model, version=version, allowed=allowed, rule=rule, message=f"{rule}: test",
        first_at=now, last_at=now, count=count)


@pytest.fixture
def rows(res: Any) -> list[AdmissionDecision]:
    """Decisions in production and dev; the catalogue (res) has fraud-detector, owned by people.owner."""
    production, dev = Environment.objects.get(name="production"), Environment.objects.get(name="dev")
    EnvironmentNamespace.objects.create(environment=production, namespace="payments-prod")
    return [decision(production, "payments-prod", allowed=False, rule="not_approved", version=4, count=7),
            decision(production, "payments-prod", allowed=True, rule="approved"),
            decision(dev, "payments-dev", allowed=True, rule="approved", model="secret-model")]


def test_oversight_sees_every_decision_and_filters(client: Any, people: People, rows: list[AdmissionDecision],
                                                  django_assert_max_num_queries: Any) -> None:
    client.force_login(people.auditor)
    client.get(URL)
    with django_assert_max_num_queries(12):
        page = client.get(URL).content.decode()
    assert "not_approved" in page and "secret-model" in page
    refused = client.get(URL, {"decision": "refused", "environment": "production"}).content.decode()
    assert "not_approved" in refused and "secret-model" not in refused and ">7<" in refused
    by_namespace = client.get(URL, {"namespace": "payments-dev"}).content.decode()
    assert "secret-model" in by_namespace and "not_approved" not in by_namespace
    csv = b"".join(client.get(URL, {"format": "csv"}).streaming_content).decode()
    assert "not_approved: test" in csv


def test_others_see_only_decisions_about_models_they_may_see(client: Any, people: People,
                                                             rows: list[AdmissionDecision]) -> None:
    client.force_login(people.owner)  # owns fraud-detector (tests/catalog.py), nothing of secret-model
    page = client.get(URL).content.decode()
    assert "fraud-detector" in page and "secret-model" not in page


def test_nobody_without_a_role_reads_it(client: Any, people: People, rows: list[AdmissionDecision]) -> None:
    client.force_login(people.outsider)
    response = client.get(URL)
    assert response.status_code == 403 and b"not_approved" not in response.content


def test_the_environments_page_shows_namespaces_and_links_the_decisions(client: Any, people: People,
                                                                      rows: list[AdmissionDecision]) -> None:
    client.force_login(people.auditor)
    page = client.get("/console/environments/").content.decode()
    assert "<code>payments-prod</code>" in page
    assert f"{URL}?environment=production" in page
