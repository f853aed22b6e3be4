"""The console's "Request access" form (access requests page) and the dataset page's link to it.

Personas and resources come from tests/personas.py and tests/catalog.py: olga owns every dataset and the model,
rita is a data scientist (model-owner role) who owns the service account fraud-pipeline, sam a data
steward, ines InfoSec, audrey an auditor, otto has no role. ``access_request_create`` decides; the
view checks the form first (unknown resource, permission for another kind, duration, justification,
service account) and a refusal is a message with nothing written.
"""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from access.models import AccessRequest, Dataset, ServiceAccount
from access.services.access_requests import access_request_create
from access.services.service_accounts import service_account_create
from audit.models import PendingEntry
from tests.access.helpers import grant, ledger, writes_nothing
from tests.catalog import Resources
from tests.console.helpers import client_for, messages_of
from tests.personas import People

pytestmark = pytest.mark.django_db

URL = reverse("console-access-request-create")
PAGE = reverse("console-access-requests")


def ask(user: User, **form: Any) -> Any:
    data = {"resource_type": "dataset", "resource": "customers", "permission": "read_data",
            "duration_days": "30", "justification": "features for the Q3 fraud model", **form}
    return client_for(user).post(URL, data, follow=True)


def counts() -> tuple[int, int]:
    return AccessRequest.objects.count(), PendingEntry.objects.count()


# --- asking ---------------------------------------------------------------------------------------------


def test_a_user_with_a_role_requests_read_data_on_a_dataset(people: People, res: Resources) -> None:
    # when: rita, who cannot see customers, asks for it by name
    response = ask(people.requester)
    # then
    assert response.request["PATH_INFO"] == PAGE
    created = AccessRequest.objects.get()
    assert (created.requester, created.principal_user) == (people.requester, people.requester)
    assert (created.resource_type, created.resource_id, created.permission, created.duration_days) == (
        "dataset", res.confidential.pk, "read_data", 30)
    assert created.state == AccessRequest.State.PENDING and not created.needs_infosec
    assert messages_of(response) == [
        f"Access request #{created.pk} is recorded: read_data on dataset:customers for you, 30 days. "
        "It awaits review by olga (the owner)."
    ]
    [entry] = ledger("access.request_created")
    assert entry["request_id"] == created.pk and entry["resource"] == "dataset:customers"
    assert entry["permission"] == "read_data" and entry["justification"] == "features for the Q3 fraud model"
    # and it is listed on the requests page as hers
    page = client_for(people.requester).get(PAGE)
    assert [r.pk for r, _ in page.context["others"]] == [created.pk]


def test_restricted_data_awaits_the_owner_and_infosec(people: People, res: Resources) -> None:
    response = ask(people.requester, resource="kyc-documents", duration_days="30")
    created = AccessRequest.objects.get()
    assert created.needs_infosec
    assert messages_of(response)[0].endswith("It awaits review by olga (the owner) and InfoSec.")


def test_an_environment_awaits_infosec(people: People, res: Resources) -> None:
    response = ask(people.requester, resource_type="environment", resource="production", permission="deploy_to")
    created = AccessRequest.objects.get()
    assert (created.resource_type, created.permission) == ("environment", "deploy_to")
    assert messages_of(response)[0].endswith("on environment:production for you, 30 days. "
                                             "It awaits review by InfoSec.")


def test_a_request_for_a_service_account_the_user_owns(
    people: People, res: Resources, service_account: ServiceAccount
) -> None:
    response = ask(people.requester, service_account="fraud-pipeline", permission="train_on")
    created = AccessRequest.objects.get()
    assert created.requester == people.requester and created.principal_user == service_account.user
    assert messages_of(response) == [
        f"Access request #{created.pk} is recorded: train_on on dataset:customers for service account "
        "fraud-pipeline, 30 days. It awaits review by olga (the owner)."
    ]
    assert ledger("access.request_created")[0]["principal"] == f"user:{service_account.user.pk}"


def test_someone_elses_service_account_is_not_found(
    people: People, res: Resources, service_account: ServiceAccount
) -> None:
    with writes_nothing():
        response = ask(people.steward, service_account="fraud-pipeline")
    assert messages_of(response) == [
        "No access was requested: no service account named 'fraud-pipeline' that you may see."
    ]


def test_an_auditor_sees_the_account_but_the_service_refuses_asking_for_it(
    people: People, res: Resources, service_account: ServiceAccount
) -> None:
    with writes_nothing():
        response = ask(people.auditor, service_account="fraud-pipeline")
    assert messages_of(response) == ["only the owner of service account fraud-pipeline or InfoSec may ask for it"]


def test_a_user_without_a_governance_role_is_refused_as_the_service_refuses(
    people: People, res: Resources
) -> None:
    with writes_nothing():
        response = ask(people.outsider)
    assert messages_of(response) == ["only people with a governance role may ask for access"]


@pytest.mark.parametrize("form, problem", [
    ({"resource": "no-such-table"}, "no dataset named 'no-such-table'"),
    ({"resource_type": "registered_model", "resource": "customers", "permission": "deploy_to"},
     "no registered model named 'customers'"),
    ({"resource_type": "planet"}, "choose a resource kind: dataset, registered model, environment"),
    ({"resource": "  "}, "name the dataset"),
    ({"permission": "deploy_to"},
     "the permission 'deploy_to' does not apply to a dataset (use one of view_metadata, read_data, train_on)"),
    ({"resource_type": "environment", "resource": "production", "permission": "read_data"},
     "the permission 'read_data' does not apply to an environment (use one of deploy_to, approve_promotion)"),
    ({"duration_days": "0"}, "the duration is a whole number of days between 1 and 365"),
    ({"duration_days": "366"}, "the duration is a whole number of days between 1 and 365"),
    ({"duration_days": "ten"}, "the duration is a whole number of days between 1 and 365"),
    ({"duration_days": "-5"}, "the duration is a whole number of days between 1 and 365"),
    ({"justification": "   "}, "a justification is required"),
])
def test_bad_input_is_refused_with_a_clear_message_and_nothing_written(
    people: People, res: Resources, form: dict[str, str], problem: str
) -> None:
    before = counts()
    with writes_nothing():
        response = ask(people.requester, **form)
    assert counts() == before
    assert messages_of(response) == [f"No access was requested: {problem}."]


def test_several_problems_are_named_together(people: People, res: Resources) -> None:
    data = {"resource_type": "dataset", "resource": "nope", "permission": "deploy_to", "duration_days": "0"}
    with writes_nothing():
        response = client_for(people.requester).post(URL, data, follow=True)
    assert messages_of(response) == [
        "No access was requested: no dataset named 'nope'; the permission 'deploy_to' does not apply to a dataset "
        "(use one of view_metadata, read_data, train_on); the duration is a whole number of days between 1 and "
        "365; a justification is required."
    ]


def test_a_duration_beyond_the_datas_maximum_is_refused_by_the_service(people: People, res: Resources) -> None:
    before = counts()
    response = ask(people.requester, resource="kyc-documents", duration_days="31")
    assert counts() == before
    assert messages_of(response) == ["access to restricted data may last at most 30 days"]


def test_a_duplicate_open_request_is_refused(people: People, res: Resources) -> None:
    ask(people.requester)
    before = counts()
    with writes_nothing():
        response = ask(people.requester, justification="again")
    assert counts() == before
    assert messages_of(response) == ["the same access is already requested and pending"]


def test_get_on_the_create_url_is_405(people: People) -> None:
    assert client_for(people.requester).get(URL).status_code == 405


def test_anonymous_visitors_are_sent_to_the_login_page(people: People, res: Resources) -> None:
    with writes_nothing():
        response = Client().post(URL, {"resource_type": "dataset", "resource": "customers"})
    assert response.status_code == 302 and "login" in response["Location"]


def test_csrf_is_enforced(people: People, res: Resources) -> None:
    client = client_for(people.requester, enforce_csrf_checks=True)
    with writes_nothing():
        response = client.post(URL, {"resource_type": "dataset", "resource": "customers", "permission": "read_data",
                                     "duration_days": "30", "justification": "x"})
    assert response.status_code == 403


def test_the_form_carries_a_working_csrf_token(people: People, res: Resources) -> None:
    client = client_for(people.requester, enforce_csrf_checks=True)
    client.get(PAGE)
    token = client.cookies["csrftoken"].value
    response = client.post(URL, {"resource_type": "dataset", "resource": "customers", "permission": "read_data",
                                 "duration_days": "30", "justification": "x", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert AccessRequest.objects.filter(requester=people.requester).count() == 1


# --- the form on the page -------------------------------------------------------------------------------


@pytest.mark.parametrize("who, shown", [
    ("requester", True), ("steward", True), ("auditor", True), ("infosec", True), ("owner", True),
    ("outsider", False),
])
def test_the_form_appears_only_for_people_with_a_role(people: People, who: str, shown: bool) -> None:
    page = client_for(getattr(people, who)).get(PAGE)
    assert page.status_code == 200
    assert page.context["may_request"] is shown
    assert (f'action="{URL}"' in page.content.decode()) is shown


def test_the_form_offers_the_permissions_of_each_kind_and_the_users_service_accounts(
    people: People, service_account: ServiceAccount
) -> None:
    other = service_account_create(actor=people.owner, name="olgas-bot", description="x")
    page = client_for(people.requester).get(PAGE)
    assert page.context["request_kinds"] == [
        ("dataset", "dataset", ("view_metadata", "read_data", "train_on")),
        ("registered_model", "registered model", ("view_metadata", "deploy_to", "approve_promotion")),
        ("environment", "environment", ("deploy_to", "approve_promotion")),
    ]
    assert page.context["request_accounts"] == ["fraud-pipeline"]
    assert other.name not in page.content.decode()


def test_the_form_is_pre_filled_from_the_query(people: People, res: Resources) -> None:
    page = client_for(people.requester).get(PAGE, {"resource": "dataset:customers"})
    assert page.context["request_prefill"]["kind"] == "dataset"
    assert page.context["request_prefill"]["name"] == "customers"
    html = page.content.decode()
    assert 'value="customers"' in html and '<option value="dataset" selected>' in html
    # a kind that is no resource kind pre-fills nothing
    page = client_for(people.requester).get(PAGE, {"resource": "planet:mars"})
    assert page.context["request_prefill"]["kind"] == "" and page.context["request_prefill"]["name"] == ""


# --- the dataset page's link ----------------------------------------------------------------------------


def request_link(d: Dataset) -> str:
    return f"{PAGE}?resource=dataset:{d.name}#request-access"


def test_the_dataset_page_links_to_the_form_for_who_holds_no_grant(people: People, res: Resources) -> None:
    # a steward sees every dataset without a grant
    page = client_for(people.steward).get(reverse("console-dataset", args=[res.internal.pk]))
    assert page.context["may_request"] is True
    assert request_link(res.internal) in page.content.decode()


def test_no_link_for_a_grantee_or_the_owner(people: People, res: Resources) -> None:
    grant(people.owner, people.requester, res.internal)
    for user in (people.requester, people.owner):
        page = client_for(user).get(reverse("console-dataset", args=[res.internal.pk]))
        assert page.context["may_request"] is False
        assert request_link(res.internal) not in page.content.decode()


def test_no_link_for_a_member_of_a_group_holding_a_grant(people: People, res: Resources) -> None:
    # given: sam (steward) joins the team that holds a grant
    sam = people.steward
    sam.groups.add(people.team)
    grant(people.owner, people.team, res.internal)
    page = client_for(sam).get(reverse("console-dataset", args=[res.internal.pk]))
    assert page.context["may_request"] is False


# --- bounded cost ---------------------------------------------------------------------------------------


def test_the_requests_page_with_the_form_has_a_bounded_number_of_queries(
    people: People, res: Resources, service_account: ServiceAccount, django_assert_max_num_queries: Any
) -> None:
    def make(n: int) -> None:
        for i in range(n):
            d = Dataset.objects.create(name=f"many-{n}-{i}", owner=people.owner)
            access_request_create(actor=people.requester, resource=d, permission="read_data", duration_days=10,
                                      justification="features")

    client = client_for(people.requester)
    make(1)
    with django_assert_max_num_queries(14):
        page = client.get(PAGE, {"show": "all", "resource": "dataset:customers"})
    assert page.context["may_request"] and len(page.context["others"]) == 1
    make(20)
    with django_assert_max_num_queries(14):
        page = client.get(PAGE, {"show": "all", "resource": "dataset:customers"})
    assert len(page.context["others"]) == 21


def test_the_dataset_page_with_the_link_has_a_bounded_number_of_queries(
    people: People, res: Resources, django_assert_max_num_queries: Any
) -> None:
    client = client_for(people.steward)
    with django_assert_max_num_queries(14):
        assert client.get(reverse("console-dataset", args=[res.internal.pk])).context["may_request"]

