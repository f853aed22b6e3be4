"""The console's sign-in with LOCAL_LOGIN off and on, and the password change (docs/identity.md)."""
from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client, RequestFactory

from access.auth_commands.management.commands.changepassword import Command as ChangePassword
from access.errors import AccessError, InvalidState, NotPermitted
from access.services.authentication import user_password_change
from audit import ledger
from audit.models import Entry, PendingEntry
from tests.api.helpers import writes_no_ledger
from tests.personas import PASSWORD

pytestmark = pytest.mark.django_db

NEW = "a brand new passphrase 7"


def changes() -> list[Entry]:
    ledger.integrate()
    return list(Entry.objects.filter(event_type="auth.password_changed"))


# --- LOCAL_LOGIN off -----------------------------------------------------------------------------------------


@pytest.fixture
def no_local_login(settings: Any) -> None:
    settings.LOCAL_LOGIN = False


def test_without_local_login_the_page_has_no_password_form(no_local_login: None) -> None:
    page = Client().get("/console/login/").content.decode()
    assert 'name="password"' not in page and 'type="password"' not in page


def test_without_local_login_a_password_post_is_refused_and_nothing_is_written(
    no_local_login: None, owner: User,
) -> None:
    with writes_no_ledger():
        response = Client().post("/console/login/", {"username": owner.username, "password": PASSWORD})
    assert response.status_code == 403
    assert "Password sign-in is turned off" in response.content.decode()
    assert "_auth_user_id" not in response.wsgi_request.session


def test_without_local_login_the_admin_refuses_passwords_and_sends_people_to_the_console(
    no_local_login: None, infosec: User,
) -> None:
    with writes_no_ledger():
        refused = Client().post("/admin/login/", {"username": infosec.username, "password": PASSWORD})
    assert refused.status_code == 403 and "_auth_user_id" not in refused.wsgi_request.session
    page = Client().get("/admin/login/?next=/admin/audit/entry/")
    assert page.status_code == 302
    assert page["Location"] == "/console/login/?next=%2Fadmin%2Faudit%2Fentry%2F"


def test_without_local_login_no_other_path_authenticates_a_password(no_local_login: None, owner: User,
                                                                      client: Client) -> None:
    """The backend itself refuses: DRF's session login, the test client, any future form."""
    request = RequestFactory().post("/api/v1/anything", REMOTE_ADDR="127.0.0.1")
    assert authenticate(request, username=owner.username, password=PASSWORD) is None
    assert not client.login(username=owner.username, password=PASSWORD)


def test_with_local_login_the_page_has_the_form() -> None:
    page = Client().get("/console/login/").content.decode()
    assert 'name="password"' in page and "locked for 15 minutes" in page


# --- the password change ---------------------------------------------------------------------------------------


def test_changing_ones_password_records_it_and_rotates_the_session(owner: User) -> None:
    client = Client()
    client.post("/console/login/", {"username": owner.username, "password": PASSWORD})
    key_before = client.session.session_key
    response = client.post("/console/password/", {"old_password": PASSWORD, "new_password1": NEW,
                                                  "new_password2": NEW})
    assert response.status_code == 302
    (changed,) = changes()
    assert (changed.subject_id, changed.actor_id, changed.payload) == (str(owner.pk), str(owner.pk),
                                                                       {"channel": "console"})
    body = changed.canonical_body()
    assert NEW.encode() not in body and PASSWORD.encode() not in body and owner.username.encode() not in body
    # still signed in, with a new session key; the new password works, the old one no longer
    assert client.session.session_key != key_before
    assert client.get("/console/").status_code == 200
    owner.refresh_from_db()
    assert owner.check_password(NEW) and not owner.check_password(PASSWORD)


def test_a_wrong_current_password_changes_nothing_and_counts_as_a_failed_sign_in(owner: User) -> None:
    client = Client()
    client.force_login(owner)
    response = client.post("/console/password/", {"old_password": "not it", "new_password1": NEW,
                                                  "new_password2": NEW})
    assert response.status_code == 400
    assert changes() == []
    assert Entry.objects.filter(event_type="auth.login_failed", subject_id=str(owner.pk)).count() == 1
    owner.refresh_from_db()
    assert owner.check_password(PASSWORD)


def test_a_weak_new_password_is_refused_with_the_reason(owner: User) -> None:
    client = Client()
    client.force_login(owner)
    with writes_no_ledger():
        response = client.post("/console/password/", {"old_password": PASSWORD, "new_password1": "password",
                                                      "new_password2": "password"})
    assert response.status_code == 400 and "too common" in response.content.decode()


def test_nobody_changes_another_persons_password(owner: User, infosec: User) -> None:
    with writes_no_ledger(), pytest.raises(NotPermitted):
        user_password_change(actor=infosec, user=owner, old_password=PASSWORD, new_password=NEW)


def test_the_service_refuses_a_wrong_current_password(owner: User) -> None:
    with writes_no_ledger(), pytest.raises(AccessError, match="current password"):
        user_password_change(actor=owner, user=owner, old_password="nope", new_password=NEW)


def test_an_sso_account_has_no_password_to_change(owner: User) -> None:
    owner.set_unusable_password()
    owner.save()
    client = Client()
    client.force_login(owner)
    assert "identity provider" in client.get("/console/password/").content.decode()
    with writes_no_ledger():
        assert client.post("/console/password/", {"old_password": "", "new_password1": NEW,
                                                  "new_password2": NEW}).status_code == 403
    with pytest.raises(InvalidState):
        user_password_change(actor=owner, user=owner, old_password="", new_password=NEW)


def test_the_admins_password_change_is_the_consoles(infosec: User) -> None:
    client = Client()
    client.force_login(infosec)
    response = client.get("/admin/password_change/")
    assert response.status_code == 302 and response["Location"] == "/console/password/"


def test_changepassword_on_the_host_is_validated_and_recorded(owner: User, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["password", "password", NEW, NEW])  # a weak one first: refused, asked again
    monkeypatch.setattr(ChangePassword, "_get_pass", lambda self, prompt="Password: ": next(answers))
    err = StringIO()
    call_command("changepassword", owner.username, stdout=StringIO(), stderr=err)
    assert "too common" in err.getvalue()
    (changed,) = changes()
    assert (changed.actor_type, changed.actor_id, changed.payload) == ("system", "changepassword",
                                                                       {"channel": "command"})
    owner.refresh_from_db()
    assert owner.check_password(NEW)


def test_changepassword_gives_up_after_three_refusals(owner: User, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ChangePassword, "_get_pass", lambda self, prompt="Password: ": "password")
    before = PendingEntry.objects.count()
    with pytest.raises(Exception, match="after 3 attempts"):
        call_command("changepassword", owner.username, stdout=StringIO(), stderr=StringIO())
    assert PendingEntry.objects.count() == before
