"""Role services write the ledger; the admin shows the ledger read-only, by role."""
from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import User
from django.test import Client

from access.errors import ServiceError
from access.roles import AUDITOR, INFOSEC, MODEL_OWNER
from access.services.roles import user_role_add, user_role_add_by_system, user_role_remove
from audit import ledger
from audit.models import Entry, PendingEntry
from audit.services.checkpoints import checkpoint_create
from tests.audit.integration.helpers import fill
from tests.factories import SuperuserFactory, UserFactory

pytestmark = pytest.mark.django_db


# --- services ---------------------------------------------------------------------------


def test_role_add_records_who_gave_which_role_to_whom() -> None:
    admin, user = UserFactory(roles=[INFOSEC]), UserFactory()

    changed = user_role_add(actor=admin, target=user, role=AUDITOR, reason="quarterly audit")

    assert changed is True
    assert list(user.groups.values_list("name", flat=True)) == [AUDITOR]
    ledger.integrate()
    entry = Entry.objects.get()
    assert entry.event_type == "auth.role_added"
    assert (entry.actor_type, entry.actor_id) == ("user", str(admin.pk))
    assert (entry.subject_type, entry.subject_id) == ("user", str(user.pk))
    assert entry.payload == {"role": AUDITOR, "reason": "quarterly audit"}


def test_role_add_without_reason_leaves_it_out() -> None:
    user = UserFactory()
    user_role_add_by_system(component="provisioning", target=user, role=MODEL_OWNER)
    ledger.integrate()
    assert Entry.objects.get().payload == {"role": MODEL_OWNER}


def test_adding_a_role_again_records_nothing() -> None:
    admin, user = UserFactory(roles=[INFOSEC]), UserFactory()
    user_role_add(actor=admin, target=user, role=AUDITOR, reason="SEC-1")
    ledger.integrate()

    assert user_role_add(actor=admin, target=user, role=AUDITOR, reason="SEC-1") is False

    assert PendingEntry.objects.count() == 0
    assert ledger.integrate() == 0
    assert Entry.objects.count() == 1


def test_unknown_role_is_refused_and_nothing_written() -> None:
    admin, user = UserFactory(roles=[INFOSEC]), UserFactory()

    with pytest.raises(ServiceError, match="unknown role 'root'"):
        user_role_add(actor=admin, target=user, role="root", reason="SEC-1")
    with pytest.raises(ServiceError):
        user_role_remove(actor=admin, target=user, role="root", reason="SEC-1")

    assert not user.groups.exists()
    assert PendingEntry.objects.count() == 0 and Entry.objects.count() == 0


def test_role_remove_records_and_is_idempotent() -> None:
    admin = UserFactory(roles=[INFOSEC])
    user = UserFactory(roles=[AUDITOR])

    assert user_role_remove(actor=admin, target=user, role=AUDITOR, reason="SEC-1") is True
    assert user_role_remove(actor=admin, target=user, role=AUDITOR, reason="SEC-1") is False
    assert user_role_remove(actor=admin, target=user, role=INFOSEC, reason="SEC-1") is False

    assert not user.groups.exists()
    ledger.integrate()
    entry = Entry.objects.get()
    assert (entry.event_type, entry.payload) == ("auth.role_removed", {"role": AUDITOR, "reason": "SEC-1"})
    assert entry.subject_id == str(user.pk)


def test_a_users_role_history_is_chained_by_subject() -> None:
    admin, user = UserFactory(roles=[INFOSEC]), UserFactory()
    user_role_add(actor=admin, target=user, role=AUDITOR, reason="SEC-1")
    user_role_add(actor=admin, target=UserFactory(), role=AUDITOR, reason="SEC-1")
    user_role_remove(actor=admin, target=user, role=AUDITOR, reason="SEC-1")
    ledger.integrate()

    history = list(Entry.objects.filter(subject_type="user", subject_id=str(user.pk)).order_by("seq"))
    assert [e.event_type for e in history] == ["auth.role_added", "auth.role_removed"]
    assert history[1].subject_prev == history[0].seq


# --- the admin --------------------------------------------------------------------------


@pytest.fixture
def entries() -> list[Entry]:
    fill(3)
    checkpoint_create()
    return list(Entry.objects.order_by("seq"))


@pytest.fixture
def auditor_client(client: Client) -> Client:
    client.force_login(UserFactory(roles=[AUDITOR]))
    return client


@pytest.mark.parametrize("model", ["entry", "checkpoint", "signingkey", "pendingentry"])
def test_auditor_can_view_the_ledger_lists(auditor_client: Client, entries: list[Entry], model: str) -> None:
    response = auditor_client.get(f"/admin/audit/{model}/")
    assert response.status_code == 200


def test_entry_list_shows_entries(auditor_client: Client, entries: list[Entry]) -> None:
    response = auditor_client.get("/admin/audit/entry/")
    html = response.content.decode()
    assert entries[-1].entry_hash[:16] in html
    assert "ledger.note_added" in html
    # no bulk actions, no add button
    assert 'name="action"' not in html
    assert "/admin/audit/entry/add/" not in html


def test_entry_list_search_and_filter(auditor_client: Client, entries: list[Entry]) -> None:
    response = auditor_client.get("/admin/audit/entry/", {"q": "model/1"})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [e for e in entries if e.subject_id == "model/1"]
    response = auditor_client.get("/admin/audit/entry/", {"event_type__exact": "ledger.signing_key_registered"})
    assert [e.seq for e in response.context["cl"].result_list] == [3]


def test_auditor_cannot_add(auditor_client: Client, entries: list[Entry]) -> None:
    assert auditor_client.get("/admin/audit/entry/add/").status_code == 403
    assert auditor_client.post("/admin/audit/entry/add/", {"seq": 99}).status_code == 403
    assert auditor_client.get("/admin/audit/checkpoint/add/").status_code == 403


def test_change_view_is_read_only(auditor_client: Client, entries: list[Entry]) -> None:
    entry = entries[1]
    url = f"/admin/audit/entry/{entry.seq}/change/"

    response = auditor_client.get(url)

    assert response.status_code == 200
    html = response.content.decode()
    assert entry.entry_hash in html  # it did render the entry
    assert 'name="_save"' not in html
    assert 'value="Save"' not in html
    assert 'name="_continue"' not in html
    assert response.context["has_change_permission"] is False


def test_change_view_post_is_refused(auditor_client: Client, entries: list[Entry]) -> None:
    entry = entries[1]
    response = auditor_client.post(f"/admin/audit/entry/{entry.seq}/change/", {"actor_id": "mallory"})
    assert response.status_code == 403
    assert Entry.objects.get(seq=entry.seq).actor_id == entry.actor_id


def test_delete_view_is_refused(auditor_client: Client, entries: list[Entry]) -> None:
    url = f"/admin/audit/entry/{entries[0].seq}/delete/"
    assert auditor_client.get(url).status_code == 403
    assert auditor_client.post(url, {"post": "yes"}).status_code == 403
    assert Entry.objects.count() == len(entries)


def test_a_superuser_without_a_role_cannot_open_the_ledger(client: Client, entries: list[Entry]) -> None:
    # The operator who runs createsuperuser gets no side door: the admin admits by role only.
    client.force_login(SuperuserFactory())
    assert client.get("/admin/audit/entry/").status_code == 302
    assert client.post(f"/admin/audit/entry/{entries[0].seq}/delete/", {"post": "yes"}).status_code == 302
    assert Entry.objects.count() == len(entries)


def test_even_a_superuser_auditor_cannot_change_the_ledger(client: Client, entries: list[Entry]) -> None:
    client.force_login(SuperuserFactory(roles=[AUDITOR]))
    assert client.get("/admin/audit/entry/").status_code == 200
    assert client.get("/admin/audit/entry/add/").status_code == 403
    assert client.post(f"/admin/audit/entry/{entries[0].seq}/delete/", {"post": "yes"}).status_code == 403
    response = client.post(
        "/admin/audit/entry/", {"action": "delete_selected", ACTION_CHECKBOX_NAME: [str(entries[0].seq)]}
    )
    assert Entry.objects.count() == len(entries)
    assert response.status_code in (200, 302)


@pytest.mark.parametrize("path", ["/admin/", "/admin/audit/entry/", "/admin/audit/entry/0/change/"])
def test_outsider_without_a_role_is_sent_to_login(client: Client, entries: list[Entry], path: str) -> None:
    client.force_login(UserFactory(is_staff=True))  # is_staff opens nothing: access is by role

    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("model", ["entry", "checkpoint", "signingkey", "pendingentry"])
def test_other_roles_cannot_read_the_ledger(client: Client, entries: list[Entry], model: str) -> None:
    client.force_login(UserFactory(roles=[MODEL_OWNER]))
    assert client.get(f"/admin/audit/{model}/").status_code == 302
    assert client.get("/admin/audit/entry/0/change/").status_code == 302


def test_anonymous_is_sent_to_login(client: Client) -> None:
    response = client.get("/admin/audit/entry/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/admin/audit/entry/"


def test_login_form_admits_by_role(client: Client) -> None:
    UserFactory(username="outsider", is_staff=True)
    UserFactory(username="auditor", roles=[AUDITOR])
    password = "correct horse battery staple"

    refused = client.post("/admin/login/", {"username": "outsider", "password": password})
    assert refused.status_code == 200
    assert refused.context["form"].errors
    assert "_auth_user_id" not in client.session

    admitted = client.post("/admin/login/?next=/admin/", {"username": "auditor", "password": password})
    assert admitted.status_code == 302
    assert client.get("/admin/audit/entry/").status_code == 200


def test_inactive_auditor_is_sent_to_login(client: Client) -> None:
    client.force_login(UserFactory(roles=[AUDITOR]))
    User.objects.update(is_active=False)
    assert client.get("/admin/audit/entry/").status_code == 302


def test_user_admin_action_goes_through_the_service(client: Client) -> None:
    # given
    officer = UserFactory(roles=[INFOSEC])
    targets = [UserFactory(), UserFactory(roles=[INFOSEC])]
    client.force_login(officer)

    # when
    response = client.post(
        "/admin/auth/user/",
        {"action": "add_role_infosec", ACTION_CHECKBOX_NAME: [str(u.pk) for u in targets], "index": 0,
         "confirm": "yes", "reason": "SEC-7 new analyst"},
        follow=True,
    )

    # then: only the user who lacked the role changed, and that change is in the ledger
    assert response.status_code == 200
    assert "Give role infosec: 2 done" in response.content.decode()
    assert all(u.groups.filter(name=INFOSEC).exists() for u in targets)
    ledger.integrate()
    entry = Entry.objects.get()
    assert entry.event_type == "auth.role_added"
    assert (entry.actor_type, entry.actor_id) == ("user", str(officer.pk))
    assert (entry.subject_type, entry.subject_id) == ("user", str(targets[0].pk))
    assert entry.payload == {"role": INFOSEC, "reason": "SEC-7 new analyst"}


def test_remove_role_action_goes_through_the_service(client: Client) -> None:
    officer = UserFactory(roles=[INFOSEC])
    target = UserFactory(roles=[MODEL_OWNER])
    client.force_login(officer)

    client.post("/admin/auth/user/", {"action": "remove_role_model_owner", ACTION_CHECKBOX_NAME: [str(target.pk)],
                                      "confirm": "yes", "reason": "left the team"})

    assert not target.groups.exists()
    ledger.integrate()
    assert Entry.objects.get().event_type == "auth.role_removed"


def test_a_superuser_without_a_role_cannot_change_roles(client: Client) -> None:
    target = UserFactory()
    client.force_login(SuperuserFactory())

    response = client.post("/admin/auth/user/", {"action": "add_role_infosec", ACTION_CHECKBOX_NAME: [str(target.pk)],
                                                 "confirm": "yes", "reason": "x"})

    assert response.status_code == 302
    assert not target.groups.exists()
    assert PendingEntry.objects.count() == 0


def test_user_change_form_is_read_only(client: Client) -> None:
    # Accounts are not edited in the admin: a role change is the audited role action.
    officer = UserFactory(roles=[INFOSEC])
    target = UserFactory()
    client.force_login(officer)
    url = f"/admin/auth/user/{target.pk}/change/"
    infosec = target.groups.model.objects.get(name=INFOSEC)

    assert client.get(url).status_code == 200
    response = client.post(
        url,
        {
            "username": target.username, "email": target.email, "first_name": "", "last_name": "",
            "is_active": "on", "is_staff": "on", "groups": [str(infosec.pk)], "is_superuser": "on",
        },
    )

    assert response.status_code == 403
    target.refresh_from_db()
    assert not target.is_staff and not target.is_superuser
    assert not target.groups.exists()
    assert PendingEntry.objects.count() == 0
