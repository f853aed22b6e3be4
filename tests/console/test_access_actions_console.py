"""Console actions of access governance: classifying a dataset and its fields, and starting an access review.

Personas and resources come from tests/personas.py and tests/catalog.py (olga owns every dataset, sam is a data
steward, ines InfoSec, audrey an auditor, otto an outsider). What is under test goes through the
pages; the services (``access.catalog``, ``access.grants``) decide, and a refusal is a message (or
a 403/404 page) with nothing written: ``nothing_written()`` also covers the catalog's rows.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from access.models import Dataset, DatasetField, ReviewCampaign
from governance.models import Lineage, ModelVersion
from tests.access.helpers import grant, ledger, snapshot
from tests.catalog import Resources
from tests.console.helpers import client_for, messages_of
from tests.personas import People

pytestmark = pytest.mark.django_db


def post(user: User, url: str, data: dict[str, Any]) -> Any:
    return client_for(user).post(url, data, follow=True)


def classify_url(d: Dataset) -> str:
    return reverse("console-dataset-classify", args=[d.pk])


def field_url(d: Dataset) -> str:
    return reverse("console-dataset-field-classify", args=[d.pk])


START_URL = reverse("console-review-start")


def catalog() -> dict[str, Any]:
    return {
        "rows": snapshot(),
        "datasets": list(Dataset.objects.order_by("pk").values_list(
            "pk", "level", "pii_categories", "effective_level", "classified_at", "classification_reason")),
        "fields": list(DatasetField.objects.order_by("pk").values_list("pk", "level", "pii_categories",
                                                                       "classified_at")),
        "versions": list(ModelVersion.objects.order_by("pk").values_list("pk", "data_classification")),
    }


@contextmanager
def nothing_written() -> Iterator[None]:
    """Assert the block changes no classification, no model version's level and no access or ledger row."""
    before = catalog()
    yield
    assert catalog() == before


def in_days(days: int) -> str:
    return (timezone.localdate() + timedelta(days=days)).isoformat()


# --- classifying a dataset ------------------------------------------------------------------------------


def test_a_steward_classifies_a_dataset_and_it_is_in_the_ledger(people: People, res: Resources) -> None:
    # when
    response = post(people.steward, classify_url(res.confidential),
                    {"level": "restricted", "pii_categories": ["national_id", "email"], "reason": "passport scans"})
    # then
    assert response.request["PATH_INFO"] == reverse("console-dataset", args=[res.confidential.pk])
    assert messages_of(response) == [
        "Dataset customers is classified restricted (PII: email, national_id).",
        "Effective level restricted. No model version is linked to customers.",
    ]
    res.confidential.refresh_from_db()
    assert (res.confidential.level, res.confidential.pii_categories) == ("restricted", ["email", "national_id"])
    assert res.confidential.classified_by == people.steward
    [entry] = ledger("dataset.classified")
    assert entry["level"] == "restricted" and entry["previous_level"] is None
    assert entry["reason"] == "passport scans" and entry["pii_categories"] == ["email", "national_id"]


def test_infosec_classifies_a_dataset(people: People, res: Resources) -> None:
    response = post(people.infosec, classify_url(res.internal),
                    {"level": "confidential", "pii_categories": ["email"], "reason": "emails found"})
    assert messages_of(response)[0] == "Dataset payments-internal is classified confidential (PII: email)."
    res.internal.refresh_from_db()
    assert res.internal.level == "confidential" and res.internal.effective_level == "confidential"
    assert [e["dataset"] for e in ledger("dataset.classified")] == ["payments-internal"]


def test_reclassifying_re_derives_the_linked_model_versions(people: People, res: Resources) -> None:
    # given: version 2 (internal) was trained on payments-internal
    v2 = ModelVersion.objects.get(model=res.model, version=2)
    Lineage.objects.create(version=v2, dataset=res.internal)
    # when
    response = post(people.steward, classify_url(res.internal),
                    {"level": "restricted", "reason": "raw account numbers found"})
    # then
    assert messages_of(response)[1] == (
        "Effective level restricted. 1 linked model version re-derived from lineage: 1 changed classification."
    )
    v2.refresh_from_db()
    assert v2.data_classification == "restricted"
    assert ledger("model.version_classified")[0]["level"] == "restricted"


def test_classifying_a_dataset_as_it_is_says_so_and_records_nothing(people: People, res: Resources) -> None:
    form = {"level": "confidential", "pii_categories": ["email"], "reason": "review"}
    post(people.steward, classify_url(res.confidential), form)
    with nothing_written():
        response = post(people.steward, classify_url(res.confidential), {**form, "reason": "again"})
    assert messages_of(response) == ["Dataset customers is already classified confidential (PII: email): "
                                     "nothing changed."]


@pytest.mark.parametrize("who", ["owner", "auditor", "requester"])
def test_a_viewer_who_is_no_steward_is_refused_and_nothing_is_written(
    people: People, res: Resources, who: str
) -> None:
    # given: each of them can see the dataset (the owner owns it, the auditor sees all, rita holds a grant)
    grant(people.owner, people.requester, res.internal)
    user = getattr(people, who)
    with nothing_written():
        response = post(user, classify_url(res.internal), {"level": "restricted", "reason": "mine"})
    assert messages_of(response) == ["only a data steward or InfoSec may classify datasets"]


def test_who_cannot_see_the_dataset_gets_a_404_and_nothing_is_written(
    people: People, res: Resources, approver: User
) -> None:
    for user in (approver, people.outsider):
        with nothing_written():
            response = client_for(user).post(classify_url(res.internal), {"level": "public", "reason": "x"})
            assert response.status_code == 404
            response = client_for(user).post(field_url(res.internal),
                                             {"field_name": "iban", "level": "public", "reason": "x"})
            assert response.status_code == 404


def test_an_unknown_dataset_is_a_404(people: People, res: Resources) -> None:
    assert client_for(people.steward).post(reverse("console-dataset-classify", args=[999_999]),
                                           {"level": "public", "reason": "x"}).status_code == 404


@pytest.mark.parametrize("form, problem", [
    ({"level": "secret"}, "classification must be one of public, internal, confidential, restricted, not 'secret'"),
    ({"level": ""}, "classification must be one of public, internal, confidential, restricted, not ''"),
    ({"pii_categories": ["email", "shoe_size"]}, "unknown PII category shoe_size; categories are name, email"),
    ({"reason": "  "}, "a reason is required"),
    ({"level": "internal", "pii_categories": ["card_pan"]},
     "personal data (card_pan) must be classified confidential or higher, not internal"),
])
def test_bad_classification_input_is_refused_with_a_message_and_nothing_written(
    people: People, res: Resources, form: dict[str, Any], problem: str
) -> None:
    data = {"level": "confidential", "pii_categories": ["email"], "reason": "found emails", **form}
    with nothing_written():
        response = post(people.steward, classify_url(res.internal), data)
    [message] = messages_of(response)
    assert message.startswith(problem)


def test_a_missing_reason_field_is_refused(people: People, res: Resources) -> None:
    with nothing_written():
        response = post(people.steward, classify_url(res.internal), {"level": "confidential"})
    assert messages_of(response) == ["a reason is required"]


# --- classifying a field --------------------------------------------------------------------------------


def test_a_steward_classifies_a_new_field_and_the_effective_level_rises(people: People, res: Resources) -> None:
    response = post(people.steward, field_url(res.internal),
                    {"field_name": " iban ", "level": "restricted", "pii_categories": ["bank_account"],
                     "reason": "raw IBANs"})
    assert messages_of(response) == [
        "Field iban of payments-internal is classified restricted (PII: bank_account).",
        "Effective level restricted. No model version is linked to payments-internal.",
    ]
    column = DatasetField.objects.get(dataset=res.internal, name="iban")
    assert (column.level, column.pii_categories, column.classified_by) == ("restricted", ["bank_account"],
                                                                           people.steward)
    res.internal.refresh_from_db()
    assert res.internal.level == "internal" and res.internal.effective_level == "restricted"
    [entry] = ledger("dataset.field_classified")
    assert entry["field"] == "iban" and entry["effective_level"] == "restricted"


def test_infosec_reclassifies_an_existing_field(people: People, res: Resources) -> None:
    response = post(people.infosec, field_url(res.pci),
                    {"field_name": "pan", "level": "restricted", "pii_categories": ["card_pan"],
                     "reason": "unmasked"})
    assert messages_of(response)[0] == "Field pan of card-transactions is classified restricted (PII: card_pan)."
    assert DatasetField.objects.get(dataset=res.pci, name="pan").level == "restricted"
    assert ledger("dataset.field_classified")[0]["previous_level"] is None  # seeded through the ORM, unclassified


@pytest.mark.parametrize("form, problem", [
    ({"field_name": ""}, "a field name is required"),
    ({"field_name": "bad\x01name"}, "the field name must not contain control characters"),
    ({"level": "top-secret"}, "classification must be one of"),
    ({"pii_categories": ["religion"]}, "unknown PII category religion"),
    ({"reason": ""}, "a reason is required"),
])
def test_bad_field_classification_is_refused_and_writes_nothing(
    people: People, res: Resources, form: dict[str, Any], problem: str
) -> None:
    data = {"field_name": "iban", "level": "restricted", "pii_categories": ["bank_account"], "reason": "r", **form}
    with nothing_written():
        response = post(people.steward, field_url(res.internal), data)
    [message] = messages_of(response)
    assert message.startswith(problem)
    assert not DatasetField.objects.filter(dataset=res.internal).exists()


def test_the_owner_may_not_classify_a_field(people: People, res: Resources) -> None:
    with nothing_written():
        response = post(people.owner, field_url(res.internal),
                        {"field_name": "iban", "level": "public", "reason": "not personal"})
    assert messages_of(response) == ["only a data steward or InfoSec may classify dataset fields"]


# --- the forms on the dataset page ------------------------------------------------------------------------


@pytest.mark.parametrize("who, shown", [
    ("steward", True), ("infosec", True), ("owner", False), ("auditor", False),
])
def test_the_classify_forms_are_shown_only_to_stewards_and_infosec(
    people: People, res: Resources, who: str, shown: bool
) -> None:
    response = client_for(getattr(people, who)).get(reverse("console-dataset", args=[res.pci.pk]))
    html = response.content.decode()
    assert response.context["may_classify"] is shown
    assert (classify_url(res.pci) in html) is shown
    assert (field_url(res.pci) in html) is shown


def test_the_classify_form_offers_every_level_and_pii_category(people: People, res: Resources) -> None:
    html = client_for(people.steward).get(reverse("console-dataset", args=[res.confidential.pk])).content.decode()
    for level in ("public", "internal", "confidential", "restricted"):
        assert f'<option value="{level}"' in html
    assert '<option value="confidential" selected>' in html  # the dataset's own level
    assert 'name="pii_categories" value="email" checked' in html  # its own category
    assert 'name="pii_categories" value="card_pan"' in html
    assert "<datalist" in html and '<option value="pan">' not in html  # customers has no field
    pci = client_for(people.steward).get(reverse("console-dataset", args=[res.pci.pk])).content.decode()
    assert '<option value="pan">' in pci  # the field form suggests the existing fields


def test_the_dataset_page_has_a_bounded_number_of_queries(
    people: People, res: Resources, django_assert_max_num_queries: Any
) -> None:
    grant(people.infosec, people.requester, res.pci)
    v1 = ModelVersion.objects.get(model=res.model, version=1)
    Lineage.objects.create(version=v1, dataset=res.pci)
    client = client_for(people.steward)
    url = reverse("console-dataset", args=[res.pci.pk])
    with django_assert_max_num_queries(12) as few:
        client.get(url)
    for i in range(40):
        DatasetField.objects.create(dataset=res.pci, name=f"col_{i}", level="confidential", pii_categories=["email"],
                                    classified_by=people.steward, classified_at=timezone.now())
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(url)
    assert len(response.context["matrix"]) == 41 and len(response.context["field_names"]) == 41


# --- starting an access review ----------------------------------------------------------------------------


def test_infosec_starts_a_review_and_lands_on_its_page(people: People, res: Resources) -> None:
    # given: one grant on confidential data, one on internal data
    on_confidential = grant(people.owner, people.requester, res.confidential)
    grant(people.owner, people.requester, res.internal)
    # when: the default levels (confidential, restricted) are ticked
    response = post(people.infosec, START_URL,
                    {"name": "Q3 review", "deadline": in_days(14), "levels": ["confidential", "restricted"]})
    # then
    campaign = ReviewCampaign.objects.get()
    assert response.redirect_chain[-1][0] == reverse("console-review", args=[campaign.pk])
    assert messages_of(response) == [f"Access review Q3 review started, due {in_days(14)}.", "1 grant to review."]
    assert campaign.name == "Q3 review" and campaign.created_by == people.infosec
    assert timezone.localdate(campaign.deadline).isoformat() == in_days(14)
    assert [i.grant_id for i in campaign.items.all()] == [on_confidential.pk]
    [entry] = ledger("access.review_started")
    assert entry["campaign_id"] == campaign.pk and entry["items"] == 1


def test_the_levels_chosen_decide_which_grants_are_reviewed(people: People, res: Resources) -> None:
    on_internal = grant(people.owner, people.requester, res.internal)
    grant(people.owner, people.requester, res.confidential)
    post(people.infosec, START_URL, {"name": "internal only", "deadline": in_days(3), "levels": ["internal"]})
    assert [i.grant_id for i in ReviewCampaign.objects.get().items.all()] == [on_internal.pk]


@pytest.mark.parametrize("who", ["steward", "owner", "auditor", "outsider"])
def test_only_infosec_may_start_a_review(people: People, res: Resources, who: str) -> None:
    grant(people.owner, people.requester, res.confidential)
    with nothing_written():
        response = client_for(getattr(people, who)).post(
            START_URL, {"name": "mine", "deadline": in_days(7), "levels": ["confidential"]})
    assert response.status_code == 403
    assert "Only InfoSec may start an access review." in response.content.decode()


@pytest.mark.parametrize("form, problem", [
    ({"deadline": in_days(-1)}, "No access review was started: the review deadline must be in the future"),
    ({"deadline": in_days(0)}, "No access review was started: the review deadline must be in the future"),
    ({"deadline": ""}, "No access review was started: a deadline is required."),
    ({"deadline": "next friday"}, "No access review was started: the deadline 'next friday' is not a date"),
    ({"deadline": "2031-02-30"}, "No access review was started: the deadline '2031-02-30' is not a date"),
    ({"name": "  "}, "a name is required"),
    ({"levels": []}, "levels must be a non-empty list of public, internal, confidential, restricted"),
    ({"levels": ["secret"]}, "levels must be a non-empty list of public, internal, confidential, restricted"),
])
def test_a_bad_review_form_is_refused_with_a_message_and_nothing_written(
    people: People, res: Resources, form: dict[str, Any], problem: str
) -> None:
    grant(people.owner, people.requester, res.confidential)
    data = {"name": "Q3 review", "deadline": in_days(7), "levels": ["confidential"], **form}
    with nothing_written():
        response = post(people.infosec, START_URL, data)
    assert response.request["PATH_INFO"] == reverse("console-reviews")
    [message] = messages_of(response)
    assert message.startswith(problem)


def test_a_missing_name_field_is_refused(people: People, res: Resources) -> None:
    with nothing_written():
        response = post(people.infosec, START_URL, {"deadline": in_days(7), "levels": ["confidential"]})
    assert messages_of(response) == ["a name is required"]


@pytest.mark.parametrize("who, shown", [
    ("infosec", True), ("steward", False), ("owner", False), ("auditor", False),
])
def test_the_start_form_is_shown_only_to_infosec(people: People, who: str, shown: bool) -> None:
    response = client_for(getattr(people, who)).get(reverse("console-reviews"))
    assert response.context["may_start_review"] is shown
    assert (START_URL in response.content.decode()) is shown


def test_the_start_form_ticks_the_default_levels_and_offers_a_future_date(people: People) -> None:
    html = client_for(people.infosec).get(reverse("console-reviews")).content.decode()
    assert 'name="levels" value="confidential" checked' in html
    assert 'name="levels" value="restricted" checked' in html
    assert 'name="levels" value="internal">' in html
    assert f'min="{in_days(1)}"' in html


# --- method and CSRF --------------------------------------------------------------------------------------


def test_the_action_urls_accept_only_post(people: People, res: Resources) -> None:
    client = client_for(people.infosec)
    for url in (classify_url(res.internal), field_url(res.internal), START_URL):
        assert client.get(url).status_code == 405


@pytest.mark.parametrize("target", ["classify", "field", "start"])
def test_csrf_is_enforced_on_the_actions(people: People, res: Resources, target: str) -> None:
    url, data = {
        "classify": (classify_url(res.internal), {"level": "restricted", "reason": "x"}),
        "field": (field_url(res.internal), {"field_name": "iban", "level": "restricted", "reason": "x"}),
        "start": (START_URL, {"name": "n", "deadline": in_days(7), "levels": ["internal"]}),
    }[target]
    client = client_for(people.infosec, enforce_csrf_checks=True)
    with nothing_written():
        assert client.post(url, data).status_code == 403


def test_the_classify_form_carries_a_working_csrf_token(people: People, res: Resources) -> None:
    # given: a browser-like client that gets the page (and its CSRF cookie) first
    client = client_for(people.steward, enforce_csrf_checks=True)
    client.get(reverse("console-dataset", args=[res.internal.pk]))
    token = client.cookies["csrftoken"].value
    # when
    response = client.post(classify_url(res.internal),
                           {"level": "restricted", "reason": "raw data", "csrfmiddlewaretoken": token})
    # then
    assert response.status_code == 302
    res.internal.refresh_from_db()
    assert res.internal.level == "restricted"
