"""Console pages of access governance: datasets and their classification matrix, grants (list,
filters, grant, revoke), access requests and access reviews.

Personas and resources come from tests/personas.py and tests/catalog.py: olga owns every dataset and the model,
sam is a data steward, ines/ivan are InfoSec, rita a data scientist, otto an outsider, audrey an
auditor. Actions go through ``access.grants``: a refusal is a message and ``writes_nothing()``;
a success lands in the ledger.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from access.models import AccessRequest, Dataset, Grant, ReviewCampaign, ReviewItem
from access.services.access_requests import access_request_create
from access.services.grants import grant_revoke
from access.services.reviews import review_campaign_start
from tests.access.helpers import grant, ledger, writes_nothing
from tests.catalog import Resources
from tests.console.helpers import client_for, messages_of
from tests.personas import People

pytestmark = pytest.mark.django_db


def post(user: User, url: str, **data: Any) -> Any:
    return client_for(user).post(url, data, follow=True)


def revoke_url(g: Grant) -> str:
    return reverse("console-grant-revoke", args=[g.pk])


# --- login and visibility -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name, args", [
    ("console-access", []), ("console-dataset", [1]), ("console-grants", []), ("console-access-requests", []),
    ("console-reviews", []), ("console-review", [1]),
])
def test_anonymous_visitors_are_sent_to_the_login_page(db: None, name: str, args: list[int]) -> None:
    response = Client().get(reverse(name, args=args))
    assert response.status_code == 302 and response["Location"].startswith("/console/login/?next=")


def test_a_steward_sees_every_dataset_an_outsider_none(people: People, res: Resources) -> None:
    names = [d.name for d in client_for(people.steward).get(reverse("console-access")).context["page"].object_list]
    assert names == sorted(Dataset.objects.values_list("name", flat=True))
    assert list(client_for(people.outsider).get(reverse("console-access")).context["page"].object_list) == []
    assert client_for(people.outsider).get(reverse("console-dataset", args=[res.pci.pk])).status_code == 404


def test_a_grantee_sees_the_dataset_they_hold_a_grant_on(people: People, res: Resources) -> None:
    grant(people.owner, people.requester, res.internal)
    page = client_for(people.requester).get(reverse("console-access")).context["page"]
    assert [d.name for d in page.object_list] == ["payments-internal"]
    assert client_for(people.requester).get(reverse("console-dataset", args=[res.confidential.pk])).status_code == 404


def test_the_dataset_page_shows_the_classification_matrix(people: People, res: Resources) -> None:
    response = client_for(people.auditor).get(reverse("console-dataset", args=[res.pci.pk]))
    assert response.status_code == 200
    assert response.context["categories"] == ["card_pan"]
    assert response.context["matrix"][0]["name"] == "pan" and response.context["matrix"][0]["marks"] == [True]
    assert response.context["own_marks"] == [False]
    assert not response.context["may_grant"]  # an auditor reads
    assert "card_pan" in response.content.decode()


def test_the_dataset_list_has_a_bounded_number_of_queries(
    people: People, res: Resources, django_assert_max_num_queries: Any
) -> None:
    client = client_for(people.steward)
    with django_assert_max_num_queries(8):
        client.get(reverse("console-access"))
    for i in range(30):
        Dataset.objects.create(name=f"bulk-{i}", owner=people.owner)
    with django_assert_max_num_queries(8):
        assert len(client.get(reverse("console-access")).context["page"].object_list) == 25


# --- grants ---------------------------------------------------------------------------------------------


def test_the_grants_list_filters_by_principal_resource_expiry_and_status(people: People, res: Resources) -> None:
    soon = grant(people.owner, people.requester, res.internal, days=3)
    later = grant(people.owner, people.auditor, res.public, days=60)
    gone = grant(people.owner, people.requester, res.confidential)
    grant_revoke(actor=people.owner, grant=gone, reason="left the team")
    client = client_for(people.infosec)

    def ids(**params: str) -> list[int]:
        return [row["grant"].pk for row in client.get(reverse("console-grants"), params).context["rows"]]

    assert ids() == [later.pk, soon.pk]  # active by default, newest first
    assert ids(principal="rita") == [soon.pk]
    assert ids(resource_type="dataset", resource="fx") == [later.pk]
    assert ids(expires_within="7") == [soon.pk]
    assert ids(status="revoked") == [gone.pk]
    assert ids(status="all", principal="rita") == [gone.pk, soon.pk]


def test_the_grants_list_has_a_bounded_number_of_queries(
    people: People, res: Resources, django_assert_max_num_queries: Any
) -> None:
    client = client_for(people.infosec)
    grant(people.owner, people.requester, res.internal)
    with django_assert_max_num_queries(12):
        client.get(reverse("console-grants"))
    for i in range(30):
        Dataset.objects.create(name=f"bulk-{i}", owner=people.owner)
    for d in Dataset.objects.filter(name__startswith="bulk-"):
        grant(people.owner, people.requester, d)
    grant(people.owner, people.requester, res.model, permission="view_metadata")
    with django_assert_max_num_queries(12):
        assert len(client.get(reverse("console-grants")).context["rows"]) == 25


def test_an_owner_grants_from_the_dataset_page_and_it_is_in_the_ledger(people: People, res: Resources) -> None:
    response = post(people.owner, reverse("console-grant-create"), principal="rita", resource_type="dataset",
                    resource="payments-internal", permission="read_data", duration_days="30",
                    justification="features for the Q3 model",
                    next=reverse("console-dataset", args=[res.internal.pk]))
    assert messages_of(response) == ["Granted read_data on payments-internal to rita for 30 days."]
    assert response.request["PATH_INFO"] == reverse("console-dataset", args=[res.internal.pk])
    created = Grant.objects.get(user=people.requester, resource_id=res.internal.pk)
    assert created.granted_by == people.owner
    assert [p["justification"] for p in ledger("access.grant_created")] == ["features for the Q3 model"]


def test_a_grant_the_service_refuses_shows_its_message_and_writes_nothing(people: People, res: Resources) -> None:
    with writes_nothing():
        response = post(people.owner, reverse("console-grant-create"), principal="rita", resource_type="dataset",
                        resource="kyc-documents", permission="read_data", duration_days="10",
                        justification="needed")
    assert messages_of(response) == ["only InfoSec may grant access to dataset:kyc-documents"]


@pytest.mark.parametrize("data, problem", [
    ({"principal": "nobody"}, "no user (or group:<name>) by that name that you may name here"),
    ({"resource": "missing"}, "no dataset by that name that you can see"),
    ({"duration_days": "0"}, "the duration is a number of days between 1 and 365"),
    ({"duration_days": "abc"}, "the duration is a number of days between 1 and 365"),
    ({"justification": " "}, "a justification is required"),
    ({"permission": "deploy_to"}, "'deploy_to' does not apply to a dataset"),
])
def test_bad_grant_input_shows_a_message_and_writes_nothing(
    people: People, res: Resources, data: dict[str, str], problem: str
) -> None:
    form = {"principal": "rita", "resource_type": "dataset", "resource": "payments-internal",
            "permission": "read_data", "duration_days": "30", "justification": "features", **data}
    with writes_nothing():
        response = post(people.owner, reverse("console-grant-create"), **form)
    assert problem in messages_of(response)[0]


def test_the_grant_form_tells_a_caller_nothing_about_which_names_exist(people: People, res: Resources) -> None:
    """Naming an existing or a missing principal gives the same answer to someone who may not grant on the
    resource (or names a resource they cannot see): the form cannot be used to probe usernames."""
    def answer(user: User, principal: str, resource: str) -> list[str]:
        with writes_nothing():
            return messages_of(post(user, reverse("console-grant-create"), principal=principal,
                                    resource_type="dataset", resource=resource, permission="read_data",
                                    duration_days="30", justification="probe"))

    # a steward sees the datasets but grants on none of them; an outsider sees none
    for user, resource in ((people.steward, "payments-internal"), (people.outsider, "payments-internal"),
                           (people.owner, "no-such-dataset")):
        assert answer(user, "rita", resource) == answer(user, "nobody-by-that-name", resource)
    # an owner may grant on their dataset, and so may name colleagues: a closed account is no name
    people.requester.is_active = False
    people.requester.save(update_fields=["is_active"])
    assert answer(people.owner, "rita", "payments-internal") == answer(
        people.owner, "nobody-by-that-name", "payments-internal")


def test_an_owner_revokes_with_a_reason(people: People, res: Resources) -> None:
    g = grant(people.owner, people.requester, res.internal)
    page = client_for(people.owner).get(reverse("console-grants"))
    assert page.context["rows"][0]["may_revoke"]
    response = post(people.owner, revoke_url(g), comment="left the fraud team")
    assert messages_of(response) == [f"Grant #{g.pk} is revoked."]
    g.refresh_from_db()
    assert g.revoked_by == people.owner and g.revoke_reason == "left the fraud team"
    assert ledger("access.grant_revoked")[0]["reason"] == "left the fraud team"


def test_a_revoke_without_a_reason_shows_a_message_and_writes_nothing(people: People, res: Resources) -> None:
    g = grant(people.owner, people.requester, res.internal)
    with writes_nothing():
        response = post(people.owner, revoke_url(g), comment="  ")
    assert messages_of(response) == ["a reason is required"]


def test_a_steward_who_neither_owns_nor_granted_is_refused(people: People, res: Resources) -> None:
    g = grant(people.owner, people.requester, res.internal)
    assert not client_for(people.steward).get(reverse("console-grants")).context["rows"][0]["may_revoke"]
    with writes_nothing():
        response = post(people.steward, revoke_url(g), comment="tidy up")
    assert messages_of(response) == [
        "only InfoSec, the owner of dataset:payments-internal or the granter may revoke this grant"
    ]


def test_an_outsider_cannot_reach_a_grant(people: People, res: Resources) -> None:
    g = grant(people.owner, people.requester, res.internal)
    assert client_for(people.outsider).get(reverse("console-grants")).context["rows"] == []
    with writes_nothing():
        assert client_for(people.outsider).post(revoke_url(g), {"comment": "x"}).status_code == 404


def test_csrf_is_enforced_on_revoke(people: People, res: Resources) -> None:
    g = grant(people.owner, people.requester, res.internal)
    client = client_for(people.owner, enforce_csrf_checks=True)
    with writes_nothing():
        assert client.post(revoke_url(g), {"comment": "left"}).status_code == 403


# --- access requests ------------------------------------------------------------------------------------


@pytest.fixture
def asked(people: People, res: Resources) -> AccessRequest:
    return access_request_create(actor=people.requester, resource=res.internal, permission="read_data",
                                     duration_days=30, justification="features for the Q3 model")


def decide_url(r: AccessRequest, action: str) -> str:
    return reverse("console-access-request-action", args=[r.pk, action])


def test_the_owner_sees_the_request_awaiting_and_approves_it(people: People, asked: AccessRequest) -> None:
    page = client_for(people.owner).get(reverse("console-access-requests"))
    assert [r.pk for r, _ in page.context["awaiting"]] == [asked.pk]
    assert page.context["awaiting"][0][1] == "dataset:payments-internal"
    response = post(people.owner, decide_url(asked, "approve"), comment="ok for Q3")
    assert messages_of(response) == [f"Access request #{asked.pk}: your approval is recorded."]
    asked.refresh_from_db()
    assert asked.state == AccessRequest.State.APPROVED
    assert Grant.objects.filter(request=asked, user=people.requester).exists()
    assert ledger("access.request_approved")[0]["comment"] == "ok for Q3"


def test_infosec_rejects_a_request(people: People, asked: AccessRequest) -> None:
    response = post(people.infosec, decide_url(asked, "reject"), comment="use the aggregated table")
    assert messages_of(response) == [f"Access request #{asked.pk} is rejected."]
    asked.refresh_from_db()
    assert asked.state == AccessRequest.State.REJECTED


def test_the_requester_cannot_approve_their_own_request(people: People, asked: AccessRequest) -> None:
    assert client_for(people.requester).get(reverse("console-access-requests")).context["awaiting"] == []
    with writes_nothing():
        response = post(people.requester, decide_url(asked, "approve"), comment="me")
    assert messages_of(response) == ["you cannot approve access you asked for or that is for you"]


def test_an_empty_comment_on_a_request_writes_nothing(people: People, asked: AccessRequest) -> None:
    with writes_nothing():
        response = post(people.owner, decide_url(asked, "approve"), comment="")
    assert messages_of(response) == ["a comment is required"]


def test_an_outsider_gets_a_404_on_a_request(people: People, asked: AccessRequest) -> None:
    with writes_nothing():
        assert client_for(people.outsider).post(decide_url(asked, "approve"), {"comment": "x"}).status_code == 404


# --- access reviews -------------------------------------------------------------------------------------


@pytest.fixture
def campaign(people: People, res: Resources) -> ReviewCampaign:
    grant(people.owner, people.requester, res.confidential)
    return review_campaign_start(actor=people.infosec, name="Q3 review", deadline=timezone.now() + timedelta(days=7))


def test_the_reviewer_certifies_with_a_comment(people: People, campaign: ReviewCampaign) -> None:
    listing = client_for(people.owner).get(reverse("console-reviews"))
    assert [c.pk for c in listing.context["page"].object_list] == [campaign.pk]
    page = client_for(people.owner).get(reverse("console-review", args=[campaign.pk]))
    row = page.context["rows"][0]
    assert row["may_decide"] and row["resource"] == "dataset:customers"
    url = reverse("console-review-decide", args=[row["item"].pk, "certified"])
    response = post(people.owner, url, comment="still on the fraud team")
    assert messages_of(response) == [f"Grant #{row['item'].grant_id} is certified in this review."]
    assert ReviewItem.objects.get(pk=row["item"].pk).decision == "certified"
    assert ledger("access.review_decided")[0]["decision"] == "certified"


def test_the_reviewer_revokes_and_the_grant_is_revoked(people: People, campaign: ReviewCampaign) -> None:
    item = campaign.items.get()
    post(people.owner, reverse("console-review-decide", args=[item.pk, "revoked"]), comment="left the team")
    assert Grant.objects.get(pk=item.grant_id).revoked_at is not None


def test_a_review_decision_needs_a_comment(people: People, campaign: ReviewCampaign) -> None:
    item = campaign.items.get()
    with writes_nothing():
        response = post(people.owner, reverse("console-review-decide", args=[item.pk, "certified"]), comment="")
    assert messages_of(response) == ["A comment is required: nothing was decided."]


def test_outsiders_see_no_review_and_cannot_decide(people: People, campaign: ReviewCampaign) -> None:
    item = campaign.items.get()
    client = client_for(people.outsider)
    assert list(client.get(reverse("console-reviews")).context["page"].object_list) == []
    assert client.get(reverse("console-review", args=[campaign.pk])).status_code == 404
    with writes_nothing():
        url = reverse("console-review-decide", args=[item.pk, "certified"])
        assert client.post(url, {"comment": "x"}).status_code == 404


def test_an_auditor_reads_a_review_but_may_not_decide(people: People, campaign: ReviewCampaign) -> None:
    page = client_for(people.auditor).get(reverse("console-review", args=[campaign.pk]))
    assert page.status_code == 200 and not page.context["rows"][0]["may_decide"]
    item = campaign.items.get()
    with writes_nothing():
        response = post(people.auditor, reverse("console-review-decide", args=[item.pk, "certified"]), comment="x")
    assert messages_of(response) == ["only the item's reviewer or InfoSec may decide it"]


def test_the_requests_page_has_a_bounded_number_of_queries(
    people: People, res: Resources, django_assert_max_num_queries: Any
) -> None:
    def ask(n: int) -> None:
        for i in range(n):
            d = Dataset.objects.create(name=f"ask-{n}-{i}", owner=people.owner)
            access_request_create(actor=people.requester, resource=d, permission="read_data", duration_days=10,
                                      justification="features")
            access_request_create(actor=people.auditor, resource=d, permission="view_metadata",
                                      duration_days=10, justification="audit sample")

    client = client_for(people.owner)
    ask(1)
    with django_assert_max_num_queries(14):
        assert len(client.get(reverse("console-access-requests")).context["awaiting"]) == 2
    ask(20)
    with django_assert_max_num_queries(14):
        assert len(client.get(reverse("console-access-requests")).context["awaiting"]) == 42


def test_the_review_page_has_a_bounded_number_of_queries(
    people: People, res: Resources, django_assert_max_num_queries: Any
) -> None:
    for i in range(30):
        d = Dataset.objects.create(name=f"conf-{i}", owner=people.owner, level="confidential",
                                   effective_level="confidential")
        grant(people.owner, people.requester, d)
    campaign = review_campaign_start(actor=people.infosec, name="big", deadline=timezone.now() + timedelta(days=7))
    client = client_for(people.owner)
    with django_assert_max_num_queries(10):
        page = client.get(reverse("console-review", args=[campaign.pk]))
    assert len(page.context["rows"]) == 30


def test_the_reviews_list_has_a_bounded_number_of_queries(
    people: People, res: Resources, django_assert_max_num_queries: Any
) -> None:
    grant(people.owner, people.requester, res.confidential)
    client = client_for(people.infosec)
    review_campaign_start(actor=people.infosec, name="first", deadline=timezone.now() + timedelta(days=7))
    with django_assert_max_num_queries(8):
        client.get(reverse("console-reviews"))
    for i in range(12):
        review_campaign_start(actor=people.infosec, name=f"r{i}", deadline=timezone.now() + timedelta(days=7))
    with django_assert_max_num_queries(8):
        assert len(client.get(reverse("console-reviews")).context["page"].object_list) == 13


@pytest.mark.parametrize("nxt", ["https://evil.example/console/", "//evil.example/console/", "/admin/"])
def test_the_next_parameter_only_returns_to_console_pages(people: People, res: Resources, nxt: str) -> None:
    g = grant(people.owner, people.requester, res.internal)
    response = client_for(people.owner).post(revoke_url(g), {"comment": "left", "next": nxt})
    assert response.status_code == 302 and response["Location"] == reverse("console-grants")
