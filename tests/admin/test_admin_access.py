"""Who may open the admin (InfoSec and auditors, by role) and that it is read-only for everybody.

The threats: any console role listing every dataset (PCI ones included), service account,
promotion and violation in ``/admin/``; an operator who runs ``createsuperuser`` (or sets
``is_staff``) getting a side door; an auditor or InfoSec changing rows in the admin
without a service, so without a ledger entry.
"""
from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import User
from django.test import Client

from tests.admin.helpers import OUTSIDERS, READERS, Cast, World, admin_pages, client_for, everything
from web.admin_site import RawViewMixin

pytestmark = pytest.mark.django_db

PASSWORD = "pw"


@pytest.mark.parametrize("persona", OUTSIDERS)
def test_no_role_but_infosec_or_auditor_opens_the_admin_index(cast: Cast, world: World, persona: str) -> None:
    response = client_for(cast[persona]).get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("persona", OUTSIDERS)
def test_no_changelist_or_row_is_shown_to_other_roles(cast: Cast, world: World, persona: str) -> None:
    client = client_for(cast[persona])
    for page in admin_pages():
        response = client.get(f"/admin/{page}/")
        assert response.status_code == 302, page
        assert response["Location"].startswith("/admin/login/"), page
    # a row's page, the PCI dataset's, and the autocomplete endpoint are closed too
    assert client.get(f"/admin/access/dataset/{world.res.pci.pk}/change/").status_code == 302
    assert client.get("/admin/autocomplete/", {"app_label": "access", "model_name": "dataset",
                                               "field_name": "dataset"}).status_code == 302


@pytest.mark.parametrize("persona", READERS)
def test_infosec_and_auditors_see_every_page(cast: Cast, world: World, persona: str) -> None:
    client = client_for(cast[persona])
    assert client.get("/admin/").status_code == 200
    for page in admin_pages():
        response = client.get(f"/admin/{page}/")
        assert response.status_code == 200, page
        html = response.content.decode()
        assert f"/admin/{page}/add/" not in html, page  # no add button
        row = response.context["cl"].result_list[:1]
        if row:
            change = client.get(f"/admin/{page}/{row[0].pk}/change/")
            assert change.status_code == 200, page
            assert 'name="_save"' not in change.content.decode(), page
            assert change.context["has_change_permission"] is False, page


def test_an_inactive_infosec_account_is_sent_to_login(cast: Cast, world: World) -> None:
    client = client_for(cast.people.infosec)
    User.objects.filter(pk=cast.people.infosec.pk).update(is_active=False)
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize("persona", ["outsider", "approver", "steward", "owner", "superuser", "staff"])
def test_the_login_form_refuses_every_other_account(cast: Cast, world: World, persona: str) -> None:
    client = Client()
    response = client.post("/admin/login/", {"username": cast[persona].username, "password": PASSWORD})
    assert response.status_code == 200
    assert "Only InfoSec and auditors" in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("persona", READERS)
def test_the_login_form_admits_infosec_and_auditors(cast: Cast, world: World, persona: str) -> None:
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": cast[persona].username, "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_every_registered_admin_is_a_raw_view() -> None:
    # A model registered later with a plain ModelAdmin would fall back to Django's model
    # permissions, which a superuser holds: every admin must use the read-only base.
    strays = [m._meta.label for m, a in admin.site._registry.items() if not isinstance(a, RawViewMixin)]
    assert strays == []


@pytest.mark.parametrize("persona", ["auditor", "infosec", "superuser_auditor"])
def test_nobody_adds_changes_or_deletes_anything(cast: Cast, world: World, persona: str) -> None:
    client = client_for(cast[persona])
    before = everything()
    for page in admin_pages():
        assert client.get(f"/admin/{page}/add/").status_code == 403, page
        assert client.post(f"/admin/{page}/add/", {"name": "x", "reason": "x"}).status_code == 403, page
        rows = client.get(f"/admin/{page}/").context["cl"].result_list[:1]
        if not rows:
            continue
        pk = rows[0].pk
        assert client.post(f"/admin/{page}/{pk}/change/", {"name": "renamed"}).status_code == 403, page
        assert client.post(f"/admin/{page}/{pk}/delete/", {"post": "yes"}).status_code == 403, page
        # Django's bulk delete is not offered either: the action is unknown, nothing runs
        client.post(f"/admin/{page}/", {"action": "delete_selected", ACTION_CHECKBOX_NAME: [str(pk)], "post": "yes"})
    target = cast.people.requester
    assert client.post(f"/admin/auth/user/{target.pk}/password/",
                       {"password1": "n3w-Secret!x", "password2": "n3w-Secret!x"}).status_code == 403
    assert everything() == before


def test_no_list_offers_an_action_to_an_auditor(cast: Cast, world: World) -> None:
    client = client_for(cast.people.auditor)
    for page in admin_pages():
        assert 'name="action"' not in client.get(f"/admin/{page}/").content.decode(), page


def test_only_the_user_list_offers_actions_to_infosec(cast: Cast, world: World) -> None:
    client = client_for(cast.people.infosec)
    offering = [page for page in admin_pages() if 'name="action"' in client.get(f"/admin/{page}/").content.decode()]
    assert offering == ["auth/user"]


def test_the_grant_list_labels_resources_with_one_query_per_resource_type(cast: Cast, world: World) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.access.helpers import grant

    client = client_for(cast.people.auditor)
    with CaptureQueriesContext(connection) as few:
        response = client.get("/admin/access/grant/")
    shown = response.context["cl"].result_count
    assert b"dataset:card-transactions" in response.content  # the PCI dataset's grant, labelled
    for i in range(20):
        grant(cast.people.owner, cast.people.requester, world.res.confidential if i % 2 else world.res.model,
              "read_data" if i % 2 else "view_metadata")
    with CaptureQueriesContext(connection) as many:
        assert client.get("/admin/access/grant/").context["cl"].result_count == shown + 20
    assert len(many.captured_queries) <= len(few.captured_queries) + 1  # + registered models
