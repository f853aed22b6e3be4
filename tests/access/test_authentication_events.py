"""Sign-in throttling (django-axes) and the authentication events in the ledger (docs/identity.md).

The sign-ins go through the console's real login form with the test client (a chosen ``REMOTE_ADDR`` per
client address); the entries are read back integrated, and their canonical (hashed) bodies are checked for
what must never be there: a password, a username, an address.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from axes.exceptions import AxesBackendPermissionDenied
from axes.models import AccessAttempt
from django.contrib.auth import authenticate, login
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client, RequestFactory
from django.utils import timezone

from access.authn import USER_ATTRIBUTE
from access.backends import LoginThrottleBackend
from access.services.authentication import address_pseudonym, login_pseudonym
from audit import ledger, pii
from audit.models import Entry, PendingEntry
from tests.personas import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/console/login/"
HOME = "203.0.113.7"
ELSEWHERE = "198.51.100.23"
WRONG = "Tr0ub4dor&3-wrong"


def attempt(username: str, password: str, address: str = HOME, client: Client | None = None) -> Any:
    return (client or Client()).post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def entries(event_type: str) -> list[Entry]:
    ledger.integrate()
    return list(Entry.objects.filter(event_type=event_type).order_by("seq"))


def assert_clean(entry: Entry, *secrets: str) -> None:
    """None of ``secrets`` (a username, an address, a password) is anywhere in the entry's hashed body."""
    body = entry.canonical_body()
    for secret in secrets:
        assert secret.encode() not in body, f"{secret!r} is in the hashed body of {entry.event_type}"


def signed_in(response: Any) -> bool:
    return "_auth_user_id" in response.wsgi_request.session


# --- the throttle ----------------------------------------------------------------------------------------------


def test_twelve_wrong_passwords_then_the_right_one_is_refused(owner: User) -> None:
    """The issue's scenario: it used to succeed."""
    statuses = [attempt(owner.username, WRONG).status_code for _ in range(12)]
    final = attempt(owner.username, PASSWORD)

    assert statuses[:4] == [200] * 4  # the form again, "didn't match"
    assert statuses[4:] == [429] * 8  # the fifth failure locks; every later attempt is refused
    assert final.status_code == 429 and not signed_in(final)
    assert "Try again after" in final.content.decode()
    # five failures, one lockout, no success: the seven refused attempts wrote nothing each
    assert len(entries("auth.login_failed")) == 5
    assert len(entries("auth.locked_out")) == 1
    assert entries("auth.login_succeeded") == []


def test_an_address_is_locked_across_usernames(owner: User) -> None:
    for n in range(5):
        attempt(f"guess{n}", WRONG, address=HOME)
    # the right password of a real account, from the locked address: refused
    refused = attempt(owner.username, PASSWORD, address=HOME)
    assert refused.status_code == 429 and not signed_in(refused)
    # the same account from another address: its username has no failures, so it signs in
    admitted = attempt(owner.username, PASSWORD, address=ELSEWHERE)
    assert admitted.status_code == 302 and signed_in(admitted)
    (locked,) = entries("auth.locked_out")
    assert locked.subject_type == "login" and locked.payload["scope"] == ["address"]


def test_a_username_is_locked_across_addresses(owner: User) -> None:
    for n in range(5):
        attempt(owner.username, WRONG, address=f"192.0.2.{n + 1}")
    refused = attempt(owner.username, PASSWORD, address=ELSEWHERE)
    assert refused.status_code == 429 and not signed_in(refused)
    (locked,) = entries("auth.locked_out")
    assert (locked.subject_type, locked.subject_id) == ("user", str(owner.pk))
    assert locked.payload["scope"] == ["username"]


def test_a_success_resets_the_count(owner: User) -> None:
    for _ in range(2):
        for _ in range(4):
            assert attempt(owner.username, WRONG).status_code == 200
        client = Client()
        assert attempt(owner.username, PASSWORD, client=client).status_code == 302
        client.post("/console/logout/", REMOTE_ADDR=HOME)
    # eight failures in all, never five in a row: never locked
    assert entries("auth.locked_out") == []
    assert len(entries("auth.login_succeeded")) == 2


def test_the_lockout_ends_after_its_minutes(owner: User, settings: Any) -> None:
    for _ in range(5):
        attempt(owner.username, WRONG)
    assert attempt(owner.username, PASSWORD).status_code == 429
    # the lockout window passes (the attempts' time moved back, as the clock moving forward would)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES,
                                                                           seconds=1))
    admitted = attempt(owner.username, PASSWORD)
    assert admitted.status_code == 302 and signed_in(admitted)


def test_refused_attempts_do_not_extend_the_lockout(owner: User) -> None:
    for _ in range(5):
        attempt(owner.username, WRONG)
    locked_at = list(AccessAttempt.objects.values_list("attempt_time", "failures_since_start"))
    for _ in range(3):
        assert attempt(owner.username, WRONG).status_code == 429
    # the refused attempts were neither counted nor moved the window: the lockout ends when the page said
    assert list(AccessAttempt.objects.values_list("attempt_time", "failures_since_start")) == locked_at


def test_the_lockout_page_says_when_to_try_again(owner: User, settings: Any) -> None:
    for _ in range(5):
        response = attempt(owner.username, WRONG)
    assert response.status_code == 429
    wait = int(response["Retry-After"])
    assert settings.LOGIN_LOCKOUT_MINUTES * 60 - 5 <= wait <= settings.LOGIN_LOCKOUT_MINUTES * 60
    page = response.content.decode()
    assert "Sign-in locked" in page and f"in about {settings.LOGIN_LOCKOUT_MINUTES} minutes" in page
    # the same page for an account that does not exist: it tells nothing about which usernames are real
    for _ in range(5):
        unknown = attempt("no-such-person", WRONG, address=ELSEWHERE)
    assert unknown.status_code == 429 and "Sign-in locked" in unknown.content.decode()


def test_the_admin_login_is_throttled_too(infosec: User) -> None:
    for _ in range(5):
        Client().post("/admin/login/", {"username": infosec.username, "password": WRONG}, REMOTE_ADDR=HOME)
    refused = Client().post("/admin/login/?next=/admin/", {"username": infosec.username, "password": PASSWORD},
                            REMOTE_ADDR=HOME)
    assert refused.status_code == 429 and "_auth_user_id" not in refused.wsgi_request.session
    assert {e.payload["channel"] for e in entries("auth.login_failed")} == {"admin"}


def test_no_password_in_logs_or_in_the_throttle_tables(owner: User, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for _ in range(6):
        attempt(owner.username, WRONG)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert WRONG not in logged
    assert owner.username not in logged and HOME not in logged  # axes masks both (AXES_SENSITIVE_PARAMETERS)
    for row in AccessAttempt.objects.all():
        assert WRONG not in row.post_data and WRONG not in row.get_data


def test_a_sign_in_without_a_password_is_not_throttled(owner: User) -> None:
    """An SSO callback authenticates without a password: a locked address must not lose SSO."""
    for n in range(5):
        attempt(f"guess{n}", WRONG)
    request = RequestFactory().get("/console/sso/callback/", REMOTE_ADDR=HOME)
    assert LoginThrottleBackend().authenticate(request, code="x", state="y") is None  # allowed: not refused
    with pytest.raises(AxesBackendPermissionDenied):  # while a password attempt from there is refused
        LoginThrottleBackend().authenticate(RequestFactory().post(LOGIN, REMOTE_ADDR=HOME),
                                            username=owner.username, password=PASSWORD)


def test_the_test_clients_login_still_works(owner: User, client: Client) -> None:
    """``client.login()`` calls authenticate() without a request: not throttled, not refused."""
    assert client.login(username=owner.username, password=PASSWORD)


# --- the events ------------------------------------------------------------------------------------------------


def test_a_failure_against_a_known_account_names_it_and_keeps_the_address_as_its_personal_data(
    owner: User, infosec: User,
) -> None:
    attempt(owner.username, WRONG)
    (failed,) = entries("auth.login_failed")
    assert (failed.subject_type, failed.subject_id) == ("user", str(owner.pk))
    assert (failed.actor_type, failed.actor_id) == ("system", "login")
    assert failed.payload["channel"] == "console"
    assert pii.is_reference(failed.payload["origin"]) and "origin_hash" not in failed.payload
    assert_clean(failed, owner.username, HOME, WRONG, "password")
    assert pii.reveal(actor=infosec, seq=failed.seq, reason="incident 42")["origin"] == HOME


def test_a_failure_against_an_unknown_username_keeps_only_keyed_hashes(infosec: User) -> None:
    attempt("Mallory.Admin", WRONG)
    attempt(" mallory.admin", WRONG, address=ELSEWHERE)
    first, second = entries("auth.login_failed")
    # one target whatever the spelling; the subject is a keyed hash, never the username
    assert first.subject_type == "login" and first.subject_id == second.subject_id == login_pseudonym("mallory.admin")
    assert len(first.subject_id) == 64
    assert first.payload == {"channel": "console", "origin_hash": address_pseudonym(HOME)}
    assert second.payload["origin_hash"] == address_pseudonym(ELSEWHERE) != first.payload["origin_hash"]
    for entry in (first, second):
        assert_clean(entry, "Mallory", "mallory", HOME, ELSEWHERE, WRONG)
    assert not pii.has_personal_data(first)


def test_the_keyed_hash_depends_on_the_key(settings: Any) -> None:
    """Without the KEK nobody can test a guess: another key gives another pseudonym."""
    before = login_pseudonym("mallory")
    settings.LEDGER_PII_KEK = "B" * 43 + "="
    assert login_pseudonym("mallory") != before


def test_a_password_sign_in_is_recorded_once_with_its_origin(owner: User, infosec: User) -> None:
    response = attempt(owner.username, PASSWORD)
    assert response.status_code == 302
    (succeeded,) = entries("auth.login_succeeded")
    assert (succeeded.actor_type, succeeded.actor_id) == ("user", str(owner.pk))
    assert succeeded.payload["method"] == "password" and "amr" not in succeeded.payload
    assert_clean(succeeded, owner.username, HOME, PASSWORD)
    assert pii.reveal(actor=infosec, seq=succeeded.seq, reason="check")["origin"] == HOME


def test_an_sso_sign_in_is_recorded_with_its_amr_and_acr(owner: User) -> None:
    request = RequestFactory().get("/console/sso/callback/", REMOTE_ADDR=ELSEWHERE)
    request.session = SessionStore()
    setattr(owner, USER_ATTRIBUTE, {"amr": ["pwd", "otp"], "acr": "urn:example:loa:2", "auth_time": 1_700_000_000})
    login(request, owner, backend="django.contrib.auth.backends.ModelBackend")
    (succeeded,) = entries("auth.login_succeeded")
    assert succeeded.payload["method"] == "oidc"
    assert succeeded.payload["amr"] == ["pwd", "otp"] and succeeded.payload["acr"] == "urn:example:loa:2"
    assert_clean(succeeded, ELSEWHERE, owner.username)


def test_force_login_outside_a_request_records_nothing(owner: User, client: Client) -> None:
    before = PendingEntry.objects.count()
    client.force_login(owner)
    assert PendingEntry.objects.count() == before


def test_a_sign_out_is_recorded(owner: User, infosec: User) -> None:
    client = Client()
    attempt(owner.username, PASSWORD, client=client)
    client.post("/console/logout/", REMOTE_ADDR=ELSEWHERE)
    (out,) = entries("auth.logged_out")
    assert (out.subject_type, out.subject_id, out.actor_id) == ("user", str(owner.pk), str(owner.pk))
    assert_clean(out, ELSEWHERE, owner.username)
    assert pii.reveal(actor=infosec, seq=out.seq, reason="check")["origin"] == ELSEWHERE
    # signing out when not signed in writes nothing
    Client().post("/console/logout/", REMOTE_ADDR=ELSEWHERE)
    assert len(entries("auth.logged_out")) == 1


def test_a_session_ended_because_it_expired_is_not_a_sign_out(owner: User) -> None:
    from django.contrib.auth import logout

    from access.auth_events import SESSION_EXPIRED_ATTRIBUTE

    request = RequestFactory().get("/console/", REMOTE_ADDR=HOME)
    request.session = SessionStore()
    request.user = owner
    setattr(request, SESSION_EXPIRED_ATTRIBUTE, True)
    logout(request)
    assert entries("auth.logged_out") == []


def test_the_lockout_entry_says_what_is_locked_and_until_when(owner: User, infosec: User, settings: Any) -> None:
    for _ in range(5):
        attempt(owner.username, WRONG)
    (locked,) = entries("auth.locked_out")
    assert locked.payload["scope"] == ["address", "username"]
    until = timezone.datetime.fromisoformat(locked.payload["until"].replace("Z", "+00:00"))
    expected = timezone.now() + timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES)
    assert abs((until - expected).total_seconds()) < 30
    assert_clean(locked, owner.username, HOME, WRONG)
    assert pii.reveal(actor=infosec, seq=locked.seq, reason="check")["origin"] == HOME


def test_an_inactive_account_fails_like_a_wrong_password(owner: User) -> None:
    User.objects.filter(pk=owner.pk).update(is_active=False)
    response = attempt(owner.username, PASSWORD)
    assert response.status_code == 200 and not signed_in(response)
    (failed,) = entries("auth.login_failed")
    assert failed.subject_id == str(owner.pk)


def test_a_direct_authenticate_with_a_request_is_counted(owner: User) -> None:
    """Any path that authenticates with the request (DRF's, a future form) goes through the throttle."""
    for _ in range(5):
        assert authenticate(RequestFactory().post("/x", REMOTE_ADDR=HOME), username=owner.username,
                            password=WRONG) is None
    assert authenticate(RequestFactory().post("/x", REMOTE_ADDR=HOME), username=owner.username,
                        password=PASSWORD) is None
    assert len(entries("auth.locked_out")) == 1


# --- API tokens used from a new address ----------------------------------------------------------------------------


@pytest.fixture
def fresh_seen_addresses() -> Any:
    from web.api.auth import seen_addresses

    seen_addresses.clear()
    yield seen_addresses
    seen_addresses.clear()


def test_a_token_used_from_a_new_address_is_recorded_once_per_address(
    token_for: Any, infosec: User, fresh_seen_addresses: Any,
) -> None:
    from access.models import ApiTokenAddress

    client = token_for(["ledger:read"])  # its test-client address (127.0.0.1) is already seen
    for _ in range(3):
        assert client.get("/api/v1/ledger/keys", REMOTE_ADDR=HOME).status_code == 200
    fresh_seen_addresses.clear()  # another process: it asks the database, which says "seen"
    client.get("/api/v1/ledger/keys", REMOTE_ADDR=HOME)
    client.get("/api/v1/ledger/keys", REMOTE_ADDR=ELSEWHERE)
    client.get("/api/v1/ledger/keys")  # 127.0.0.1 again
    first_uses = [e for e in entries("auth.token_first_use_from_address") if e.payload["token_id"] == client.token.pk]
    assert len(first_uses) == 3  # 127.0.0.1 (at set-up), HOME, ELSEWHERE
    home = first_uses[1]
    assert (home.subject_type, home.subject_id) == ("service_account", client.service_account.name)
    assert home.payload["prefix"] == client.token.prefix and pii.is_reference(home.payload["origin"])
    assert_clean(home, HOME)
    assert pii.reveal(actor=infosec, seq=home.seq, reason="new address alert")["origin"] == HOME
    # the addresses seen are kept as keyed hashes only
    kept = set(ApiTokenAddress.objects.filter(token=client.token).values_list("address_hash", flat=True))
    assert kept == {address_pseudonym(a) for a in ("127.0.0.1", HOME, ELSEWHERE)}


def test_two_first_uses_from_one_address_write_one_entry(token_for: Any) -> None:
    """What two concurrent first requests do: the second insert meets the unique constraint."""
    from access.services.authentication import api_token_address_record

    client = token_for(["ledger:read"])
    assert api_token_address_record(token=client.token, origin=HOME) is not None
    assert api_token_address_record(token=client.token, origin=HOME) is None


def test_a_refused_token_records_no_address(token_for: Any, fresh_seen_addresses: Any) -> None:
    from access.services.tokens import api_token_revoke

    client = token_for(["ledger:read"])
    api_token_revoke(actor=client.service_account.owner, token=client.token, reason="leaked")
    before = PendingEntry.objects.count()
    assert client.get("/api/v1/ledger/keys", REMOTE_ADDR=HOME).status_code == 401
    assert PendingEntry.objects.count() == before


# --- the client's address behind the proxy -------------------------------------------------------------------------


@pytest.mark.parametrize(("hops", "forwarded", "remote", "expected"), [
    (0, "198.51.100.1", "10.0.0.2", "10.0.0.2"),  # no proxy configured: the header is the client's, ignored
    (1, "198.51.100.1", "10.0.0.2", "198.51.100.1"),  # Caddy's X-Forwarded-For
    (1, "6.6.6.6, 198.51.100.1", "10.0.0.2", "198.51.100.1"),  # a client-sent address further left: ignored
    (2, "6.6.6.6, 198.51.100.1, 10.0.0.9", "10.0.0.2", "198.51.100.1"),
    (1, "", "10.0.0.2", "10.0.0.2"),  # not through the proxy
    (1, "not-an-address", "10.0.0.2", None),  # never a client-chosen string as an address
    (0, "", "2001:DB8::1", "2001:db8::1"),
])
def test_the_client_address(hops: int, forwarded: str, remote: str, expected: str | None, settings: Any) -> None:
    from access.client_address import client_address

    settings.CLIENT_IP_PROXY_COUNT = hops
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == expected


def test_behind_the_proxy_the_lockout_counts_the_forwarded_address(owner: User, settings: Any) -> None:
    """Behind Caddy every request comes from the proxy's address: counting that would lock everybody out."""
    settings.CLIENT_IP_PROXY_COUNT = 1
    for n in range(5):
        Client().post(LOGIN, {"username": f"guess{n}", "password": WRONG}, REMOTE_ADDR="10.0.0.2",
                      HTTP_X_FORWARDED_FOR=HOME)
    admitted = Client().post(LOGIN, {"username": owner.username, "password": PASSWORD}, REMOTE_ADDR="10.0.0.2",
                             HTTP_X_FORWARDED_FOR=ELSEWHERE)
    assert admitted.status_code == 302
    refused = Client().post(LOGIN, {"username": owner.username, "password": PASSWORD}, REMOTE_ADDR="10.0.0.2",
                            HTTP_X_FORWARDED_FOR=HOME)
    assert refused.status_code == 429



def test_a_known_address_costs_no_query_once_committed(
    token_for: Any, fresh_seen_addresses: Any, django_capture_on_commit_callbacks: Any,
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = token_for(["ledger:read"])
    with django_capture_on_commit_callbacks(execute=True):
        client.get("/api/v1/ledger/keys", REMOTE_ADDR=HOME)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/ledger/keys", REMOTE_ADDR=HOME).status_code == 200
    assert not [q for q in queries.captured_queries if "apitokenaddress" in q["sql"]]
