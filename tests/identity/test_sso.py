"""Single sign-on against the real test OpenID provider (``oidc_provider``, tests/identity_provider.py).

Our side is Django's test client; the provider's pages are driven over HTTP by ``IdpBrowser`` and the
backend talks to the provider's token and JWKS endpoints for real. Each attack is shown refused with
nothing written: a tampered or replayed ``state``, a changed ``nonce``, a forged ID token, another
person at step-up, a disabled account.
"""
from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group, User
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from access import roles
from access.authn import SESSION_KEY
from access.errors import InvalidState, NotPermitted
from access.models import ExternalIdentity
from access.oidc import OIDCBackend, groups_from_claims
from access.services.accounts import user_account_close
from access.services.sso import SignInRefused, user_account_disable_inactive, user_account_enable
from access.tasks import disable_inactive_accounts
from audit import ledger, pii
from audit.ledger import Actor
from audit.models import Entry
from tests.identity_provider import ACR_2FA, IdentityProvider, make_account, start, stop
from tests.personas import make_user
from tests.settings_helpers import settings_environ, settings_module

pytestmark = pytest.mark.django_db


@pytest.fixture
def sso(settings: Any, oidc_provider: IdentityProvider) -> IdentityProvider:
    for name, value in oidc_provider.settings().items():
        setattr(settings, name, value)
    return oidc_provider


def begin(client: Client, path: str = "") -> str:
    """Our redirect to the provider (an authorization request); returns its URL."""
    response = client.get(path or reverse("console-sso-login"))
    assert response.status_code == 302, response.content[:500]
    return str(response["Location"])


def callback_path(back: str) -> str:
    parsed = urllib.parse.urlsplit(back)
    assert parsed.path == reverse("console-sso-callback"), back
    return f"{parsed.path}?{parsed.query}"


def sign_in(client: Client, idp: IdentityProvider, username: str, *, otp: bool = False, path: str = "") -> Any:
    """The whole code flow: our start, the provider's pages, our callback. Returns the callback's response."""
    back = idp.browser().sign_in(begin(client, path), username, otp=otp or None)
    return client.get(callback_path(back))


def entries(event_type: str) -> list[Entry]:
    ledger.integrate()
    return list(Entry.objects.filter(event_type=event_type).order_by("seq"))


def signed_in_as(client: Client) -> int | None:
    value = client.session.get("_auth_user_id")
    return int(value) if value else None


# --- sign-in ---------------------------------------------------------------------------------------------


def test_the_login_page_offers_the_provider(sso: IdentityProvider, client: Client) -> None:
    page = client.get(reverse("console-login")).content.decode()
    assert "Sign in with Test IdP" in page and reverse("console-sso-login") in page
    assert "Sign in with Test IdP" in client.get("/admin/login/?next=/admin/").content.decode()


def test_without_sso_there_is_no_provider_to_sign_in_with(client: Client) -> None:
    assert "Sign in with" not in client.get(reverse("console-login")).content.decode()
    assert client.get(reverse("console-sso-login")).status_code == 404
    assert client.get(reverse("console-sso-callback") + "?code=x&state=y").status_code == 404


def test_the_authorization_request_uses_pkce_state_and_nonce(sso: IdentityProvider, client: Client) -> None:
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(begin(client)).query))
    assert query["code_challenge_method"] == "S256" and query["code_challenge"]
    assert query["state"] in client.session["oidc_states"] and query["nonce"]
    assert query["redirect_uri"] == "http://testserver/console/sso/callback/"


def test_first_sign_in_creates_the_account_with_the_roles_of_its_groups(sso: IdentityProvider,
                                                                       client: Client) -> None:
    authorization = begin(client, reverse("console-sso-login") + "?next=/console/models/")
    anonymous_key = client.session.session_key
    response = client.get(callback_path(sso.browser().sign_in(authorization, "nora")))

    assert response.status_code == 302 and response["Location"] == "/console/models/"
    nora = User.objects.get(username="nora")
    assert signed_in_as(client) == nora.pk and not nora.has_usable_password()
    assert client.session.session_key != anonymous_key  # a new session id at sign-in
    assert set(nora.groups.values_list("name", flat=True)) == {roles.MODEL_OWNER}  # all-staff maps to nothing
    link = ExternalIdentity.objects.get(user=nora)
    assert (link.issuer, link.subject) == (sso.issuer, "nora")
    # how she signed in, from the verified ID token: a password only
    authn = client.session[SESSION_KEY]
    assert (authn["method"], authn["amr"], authn["mfa"]) == ("oidc", ["pwd"], False)
    assert client.session["oidc_id_token"].count(".") == 2
    # on the record, by the provider as system:oidc
    registered, = entries("auth.user_registered")
    added, = entries("auth.role_added")
    for entry in (registered, added):
        assert (entry.actor_type, entry.actor_id) == ("system", "oidc")
        assert (entry.subject_type, entry.subject_id) == ("user", str(nora.pk))
    assert added.payload == {"role": roles.MODEL_OWNER, "reason": f"groups claim of {sso.issuer}"}


def test_an_existing_local_account_is_never_taken_over_by_email_or_username(sso: IdentityProvider,
                                                                            client: Client) -> None:
    local = make_user("nora", roles.INFOSEC)
    local.email = "nora@example.test"  # the provider's email for its nora
    local.save()

    sign_in(client, sso, "nora")

    person = User.objects.get(pk=signed_in_as(client))
    assert person.pk != local.pk and person.username.startswith("nora-")
    assert set(person.groups.values_list("name", flat=True)) == {roles.MODEL_OWNER}
    assert not ExternalIdentity.objects.filter(user=local).exists()
    assert set(local.groups.values_list("name", flat=True)) == {roles.INFOSEC}


def test_a_sign_in_with_the_second_factor_counts_as_multi_factor(sso: IdentityProvider, client: Client) -> None:
    sign_in(client, sso, "adam", otp=True)

    authn = client.session[SESSION_KEY]
    assert (authn["amr"], authn["acr"], authn["mfa"]) == (["pwd", "otp"], ACR_2FA, True)
    assert abs(authn["auth_time"] - time.time()) < 60


def test_unmanaged_roles_given_by_hand_are_left_alone(sso: IdentityProvider, settings: Any,
                                                      client: Client) -> None:
    settings.OIDC_ROLE_MAP = {"ml-approvers": roles.APPROVER}  # break-glass is not the provider's
    sign_in(client, sso, "adam")
    adam = User.objects.get(username="adam")
    adam.groups.add(*roles_groups(roles.BREAK_GLASS))

    Client().get("/")  # (another browser)
    sign_in(Client(), sso, "adam")

    assert set(adam.groups.values_list("name", flat=True)) == {roles.APPROVER, roles.BREAK_GLASS}
    assert [e.payload["role"] for e in entries("auth.role_removed")] == []


def roles_groups(*names: str) -> list[Any]:
    return list(Group.objects.filter(name__in=names))


# --- roles follow the provider's groups -----------------------------------------------------------------------


@pytest.fixture
def own_provider(tmp_path: Path, settings: Any) -> Iterator[Any]:
    """A provider of this test's own on a fixed port (same issuer across restarts), restartable with
    other accounts: ``restart(accounts)``."""
    running: dict[str, Any] = {}

    def restart(accounts: dict[str, Any]) -> IdentityProvider:
        if "idp" in running:
            stop(running["idp"].process)
        idp = start(accounts, tmp_path, port=18151)
        running["idp"] = idp
        for name, value in idp.settings().items():
            setattr(settings, name, value)
        return idp

    yield restart
    if "idp" in running:
        stop(running["idp"].process)


def test_a_role_the_claim_no_longer_carries_is_removed_at_the_next_sign_in(own_provider: Any) -> None:
    idp = own_provider({"adam": make_account("adam", (roles.APPROVER, roles.AUDITOR))})
    sign_in(Client(), idp, "adam")
    adam = User.objects.get(username="adam")
    assert set(adam.groups.values_list("name", flat=True)) == {roles.APPROVER, roles.AUDITOR}

    # the provider's administrators take adam out of audit-team
    idp = own_provider({"adam": make_account("adam", (roles.APPROVER,))})
    client = Client()
    sign_in(client, idp, "adam")

    assert signed_in_as(client) == adam.pk
    assert set(adam.groups.values_list("name", flat=True)) == {roles.APPROVER}
    removed, = entries("auth.role_removed")
    assert (removed.actor_type, removed.actor_id, removed.subject_id) == ("system", "oidc", str(adam.pk))
    assert removed.payload == {"role": roles.AUDITOR, "reason": f"groups claim of {idp.issuer}"}
    assert len(entries("auth.role_added")) == 2  # nothing added again


# --- attacks on the flow ----------------------------------------------------------------------------------------


def test_a_tampered_state_is_refused_and_nothing_is_written(sso: IdentityProvider, client: Client) -> None:
    back = sso.browser().sign_in(begin(client), "nora")
    forged = back.replace("state=", "state=x")

    response = client.get(callback_path(forged))

    assert response.status_code == 400
    assert "does not belong to a sign-in started here" in response.content.decode()
    assert 'href="/console/sso/login/"' in response.content.decode()  # start again
    assert signed_in_as(client) is None and not User.objects.filter(username="nora").exists()


def test_an_answer_replayed_is_refused(sso: IdentityProvider, client: Client) -> None:
    back = sso.browser().sign_in(begin(client), "nora")
    assert client.get(callback_path(back)).status_code == 302
    other = Client()  # the same answer in another browser, and again in the first one
    assert other.get(callback_path(back)).status_code == 400 and signed_in_as(other) is None
    assert client.get(callback_path(back)).status_code == 400


def test_a_changed_nonce_is_refused(sso: IdentityProvider, client: Client) -> None:
    authorization = begin(client)
    session = client.session
    state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorization).query))["state"]
    session["oidc_states"][state]["nonce"] = "not-the-nonce-of-the-token"
    session.save()
    back = sso.browser().sign_in(authorization, "nora")

    response = client.get(callback_path(back))

    assert response.status_code == 400 and "could not be verified" in response.content.decode()
    assert signed_in_as(client) is None and not User.objects.filter(username="nora").exists()


def test_the_provider_saying_no_is_shown(sso: IdentityProvider, client: Client) -> None:
    state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(begin(client)).query))["state"]
    response = client.get(reverse("console-sso-callback") + f"?error=access_denied&state={state}")
    assert response.status_code == 403 and "did not sign you in (access_denied)" in response.content.decode()
    assert state not in client.session["oidc_states"]


def forge(claims: dict[str, Any], *, kid: str, key: Any = None) -> str:
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def good_claims(idp: IdentityProvider, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": idp.issuer, "aud": idp.client_id, "sub": "nora", "iat": now, "exp": now + 300,
            "nonce": "n", "groups": ["sec-team"], **changes}


def test_an_id_token_signed_by_another_key_is_refused(sso: IdentityProvider) -> None:
    # The provider's real key id (from its JWKS), with a key that is not the provider's.
    kid = jwt.PyJWKClient(sso.jwks_endpoint).get_jwk_set().keys[0].key_id
    with pytest.raises(SuspiciousOperation, match="does not verify"):
        OIDCBackend().verify_token(forge(good_claims(sso), kid=str(kid)), nonce="n")


@pytest.mark.parametrize("changes", [
    {"aud": "another-client"}, {"iss": "https://evil.example"}, {"exp": int(time.time()) - 3600},
    {"sub": None},
], ids=["audience", "issuer", "expired", "no-subject"])
def test_the_id_token_must_be_for_us_from_our_issuer_and_current(settings: Any, sso: IdentityProvider,
                                                                  changes: dict[str, Any]) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings.OIDC_RP_IDP_SIGN_KEY = key.public_key()  # our own key stands for the provider's here
    claims = {k: v for k, v in good_claims(sso, **changes).items() if v is not None}
    with pytest.raises(SuspiciousOperation):
        OIDCBackend().verify_token(forge(claims, kid="k", key=key), nonce="n")
    assert OIDCBackend().verify_token(forge(good_claims(sso), kid="k", key=key), nonce="n")["sub"] == "nora"


def test_too_many_groups_left_out_of_the_token_is_refused_not_read_as_none(sso: IdentityProvider) -> None:
    with pytest.raises(SignInRefused, match="too many groups"):
        groups_from_claims({"_claim_names": {"groups": "src1"}})
    with pytest.raises(SignInRefused, match="not a list"):
        groups_from_claims({"groups": {"a": 1}})
    assert groups_from_claims({}) == [] and groups_from_claims({"groups": "one"}) == ["one"]


def test_the_backend_answers_only_the_sso_callback(sso: IdentityProvider, rf: Any) -> None:
    request = rf.post("/console/login/?code=abc&state=def")
    assert OIDCBackend().authenticate(request, username="nora", password="x") is None


# --- step-up -----------------------------------------------------------------------------------------------------


def test_step_up_asks_for_a_new_sign_in_with_the_second_factor(sso: IdentityProvider, client: Client) -> None:
    sign_in(client, sso, "adam")
    adam = User.objects.get(username="adam")
    before = client.session.session_key
    authorization = begin(client, reverse("console-step-up") + "?next=/console/approvals/")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorization).query))
    assert (query["prompt"], query["max_age"], query["acr_values"]) == ("login", "0", ACR_2FA)

    back = sso.browser().sign_in(authorization, "adam", otp=True)
    response = client.get(callback_path(back))

    assert response.status_code == 302 and response["Location"] == "/console/approvals/"
    assert signed_in_as(client) == adam.pk and client.session.session_key != before
    authn = client.session[SESSION_KEY]
    assert (authn["amr"], authn["acr"], authn["mfa"]) == (["pwd", "otp"], ACR_2FA, True)
    step, = entries("auth.step_up")
    assert (step.actor_id, step.subject_id) == (str(adam.pk), str(adam.pk))
    assert step.payload == {"amr": ["pwd", "otp"], "acr": ACR_2FA, "mfa": True}


def test_step_up_as_another_person_is_refused_and_the_session_is_unchanged(sso: IdentityProvider,
                                                                           client: Client) -> None:
    sign_in(client, sso, "adam")
    adam = User.objects.get(username="adam")
    before = (client.session.session_key, client.session[SESSION_KEY])
    authorization = begin(client, reverse("console-step-up") + "?next=/console/")

    back = sso.browser().sign_in(authorization, "anna", otp=True)  # anna, with her second factor
    response = client.get(callback_path(back))

    assert response.status_code == 403 and "as a different person" in response.content.decode()
    assert signed_in_as(client) == adam.pk
    assert (client.session.session_key, client.session[SESSION_KEY]) == before
    assert not entries("auth.step_up") and not User.objects.filter(username="anna").exists()


def test_step_up_next_must_stay_on_this_site(sso: IdentityProvider, client: Client) -> None:
    sign_in(client, sso, "adam")
    authorization = begin(client, reverse("console-step-up") + "?next=https://evil.example/")
    response = client.get(callback_path(sso.browser().sign_in(authorization, "adam", otp=True)))
    assert response["Location"] == "/console/"


def test_without_sso_step_up_explains_there_is_no_second_factor_here(client: Client) -> None:
    client.force_login(make_user("adam", roles.APPROVER))
    response = client.get(reverse("console-step-up") + "?next=/console/approvals/")
    assert response.status_code == 200 and "no second factor is available here" in response.content.decode()


# --- logout ----------------------------------------------------------------------------------------------------------


def test_logout_ends_the_provider_session_too(sso: IdentityProvider, client: Client) -> None:
    browser = sso.browser()
    client.get(callback_path(browser.sign_in(begin(client), "nora")))
    id_token = client.session["oidc_id_token"]

    assert client.get(reverse("console-logout")).status_code == 405
    response = client.post(reverse("console-logout"))

    assert signed_in_as(client) is None
    location = urllib.parse.urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == sso.end_session_endpoint
    query = dict(urllib.parse.parse_qsl(location.query))
    assert query["id_token_hint"] == id_token
    assert query["post_logout_redirect_uri"] == "http://testserver/console/login/"
    assert browser.sign_out(response["Location"]) == "http://testserver/console/login/"
    # the provider's session is over: the next sign-in asks for the password again
    _, page = browser.follow(begin(Client()))
    assert 'name="password"' in page


def test_logout_of_a_password_session_stays_here(client: Client) -> None:
    client.force_login(make_user("adam"))
    response = client.post(reverse("console-logout"))
    assert response["Location"] == "/console/login/" and signed_in_as(client) is None


# --- accounts not used for OIDC_INACTIVE_DAYS ------------------------------------------------------------------------


def test_the_inactivity_job_disables_once_and_a_disabled_account_cannot_sign_in(sso: IdentityProvider,
                                                                                settings: Any) -> None:
    settings.OIDC_INACTIVE_DAYS = 90
    sign_in(Client(), sso, "adam")
    sign_in(Client(), sso, "nora")
    adam, nora = User.objects.get(username="adam"), User.objects.get(username="nora")
    local = make_user("bruno", roles.BREAK_GLASS)  # a local break-glass account: not the provider's
    ExternalIdentity.objects.filter(user=adam).update(last_seen_at=timezone.now() - timedelta(days=91))

    assert disable_inactive_accounts.delay().get() == 1
    assert user_account_disable_inactive() == 0  # idempotent: recorded once

    adam.refresh_from_db(), nora.refresh_from_db(), local.refresh_from_db()
    assert (adam.is_active, nora.is_active, local.is_active) == (False, True, True)
    disabled, = entries("auth.account_disabled")
    assert (disabled.actor_type, disabled.actor_id, disabled.subject_id) == ("system", "oidc", str(adam.pk))
    assert disabled.payload["account"] == f"user:{adam.pk}" and disabled.payload["inactive_days"] == 90

    client = Client()
    failures: list[dict[str, Any]] = []
    user_login_failed.connect(receiver := lambda sender, credentials, **kw: failures.append(credentials))
    try:
        response = sign_in(client, sso, "adam")
    finally:
        user_login_failed.disconnect(receiver)
    assert response.status_code == 403 and "this account is disabled" in response.content.decode()
    assert failures == [{"method": "oidc", "username": "adam"}]  # for the failure records of H3 (and axes)
    assert signed_in_as(client) is None
    assert len(entries("auth.role_added")) == 2  # nothing synchronised for a refused sign-in (adam's, nora's)


def test_infosec_enables_a_disabled_account_and_it_signs_in_again(sso: IdentityProvider) -> None:
    sign_in(Client(), sso, "adam")
    adam = User.objects.get(username="adam")
    user_account_disable_inactive(days=1, now=ExternalIdentity.objects.get(user=adam).last_seen_at
                                  + timedelta(days=2))
    ines, olga = make_user("ines", roles.INFOSEC), make_user("olga", roles.MODEL_OWNER)

    with pytest.raises(NotPermitted):
        user_account_enable(actor=olga, target=adam, reason="back from leave")
    assert not entries("auth.account_enabled")
    assert user_account_enable(actor=ines, target=adam, reason="back from leave (ticket 42)") is True
    assert user_account_enable(actor=ines, target=adam, reason="again") is False

    enabled, = entries("auth.account_enabled")
    assert (enabled.actor_id, enabled.payload) == (str(ines.pk), {"account": f"user:{adam.pk}",
                                                                   "reason": "back from leave (ticket 42)"})
    client = Client()
    sign_in(client, sso, "adam")
    assert signed_in_as(client) == adam.pk
    # a closed account stays closed
    user_account_close(actor=ines, account=olga, reason="left the company")
    with pytest.raises(InvalidState, match="closed"):
        user_account_enable(actor=make_user("ivan", roles.INFOSEC), target=olga, reason="oops")


def test_a_disabled_accounts_open_session_ends(sso: IdentityProvider) -> None:
    client = Client()
    sign_in(client, sso, "adam")
    User.objects.filter(username="adam").update(is_active=False)
    assert client.get("/console/").status_code == 302  # back to the login page


# --- settings ----------------------------------------------------------------------------------------------------


def test_the_role_map_is_read_in_both_forms_and_unknown_roles_stop_start_up(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def run(**env: str) -> dict[str, Any]:
        base = {k: v for k, v in settings_environ(tmp_path).items() if not k.startswith(("OIDC_", "MFA_"))}
        return settings_module(monkeypatch, {**base, **env})

    assert run(OIDC_ROLE_MAP='{"ml-approvers": "approver"}')["OIDC_ROLE_MAP"] == {"ml-approvers": "approver"}
    assert run(OIDC_ROLE_MAP="a=approver, b=auditor")["OIDC_ROLE_MAP"] == {"a": "approver", "b": "auditor"}
    with pytest.raises(ImproperlyConfigured, match="unknown roles superuser"):
        run(OIDC_ROLE_MAP="admins=superuser")
    with pytest.raises(ImproperlyConfigured, match="not group=role"):
        run(OIDC_ROLE_MAP="admins")
    with pytest.raises(ImproperlyConfigured, match="OIDC_OP_ISSUER"):
        run(OIDC_RP_CLIENT_ID="c", OIDC_RP_CLIENT_SECRET="s")
    with pytest.raises(ImproperlyConfigured, match="OIDC_RP_SIGN_ALGO"):
        run(OIDC_RP_SIGN_ALGO="HS256")
    endpoints = {name: "http://idp.example/x" for name in (
        "OIDC_OP_ISSUER", "OIDC_OP_AUTHORIZATION_ENDPOINT", "OIDC_OP_TOKEN_ENDPOINT", "OIDC_OP_JWKS_ENDPOINT")}
    with pytest.raises(ImproperlyConfigured, match="DEBUG is off: OIDC_OP_ISSUER must be an https URL"):
        run(OIDC_RP_CLIENT_ID="c", OIDC_RP_CLIENT_SECRET="s", DEBUG="0", **endpoints)
    assert run(OIDC_RP_CLIENT_ID="c", OIDC_RP_CLIENT_SECRET="s", **endpoints)["MFA_REQUIRED"] is True


def test_oidc_discover_prints_the_settings_of_the_provider(oidc_provider: IdentityProvider) -> None:
    out = StringIO()
    call_command("oidc_discover", oidc_provider.issuer, stdout=out)
    lines = dict(line.split("=", 1) for line in out.getvalue().splitlines() if not line.startswith("#"))
    settings = oidc_provider.settings()
    for name in ("OIDC_OP_ISSUER", "OIDC_OP_AUTHORIZATION_ENDPOINT", "OIDC_OP_TOKEN_ENDPOINT", "OIDC_OP_JWKS_ENDPOINT",
                 "OIDC_OP_LOGOUT_ENDPOINT", "OIDC_RP_SIGN_ALGO"):
        assert lines[name] == settings[name]
    with pytest.raises(CommandError, match="cannot read"):
        call_command("oidc_discover", "http://127.0.0.1:9/nothing", stdout=StringIO())


# --- moving local accounts to single sign-on (an explicit operator step) -------------------------------------------


def test_an_operator_links_a_local_account_and_its_person_then_signs_in_to_it(sso: IdentityProvider) -> None:
    adam = make_user("adam", roles.APPROVER, roles.BREAK_GLASS)
    out = StringIO()
    call_command("oidc_link", "adam", stdout=out)
    call_command("oidc_link", "adam", stdout=out)  # again: nothing more
    assert out.getvalue().splitlines() == [f"adam: linked to {sso.issuer}", f"adam: already linked to {sso.issuer}"]
    linked, = entries("auth.identity_linked")
    assert (linked.actor_type, linked.actor_id, linked.payload) == ("system", "oidc_link",
                                                                   {"account": f"user:{adam.pk}", "issuer": sso.issuer})

    client = Client()
    sign_in(client, sso, "adam")

    assert signed_in_as(client) == adam.pk and not User.objects.filter(username__startswith="adam-").exists()
    # break-glass is the provider's too in this map, and adam's groups do not carry it
    assert set(adam.groups.values_list("name", flat=True)) == {roles.APPROVER}


def test_a_link_that_would_take_over_or_double_an_identity_is_refused(sso: IdentityProvider) -> None:
    make_user("adam"), make_user("anna")
    call_command("oidc_link", "adam", stdout=StringIO())
    with pytest.raises(CommandError, match="already linked to another account"):
        call_command("oidc_link", "anna", "--subject", "adam", stdout=StringIO())
    with pytest.raises(CommandError, match="already linked to another subject"):
        call_command("oidc_link", "adam", "--subject", "someone-else", stdout=StringIO())
    out = StringIO()
    with pytest.raises(CommandError, match="nobody: no account"):
        call_command("oidc_link", "nobody", "anna", stdout=out)
    assert out.getvalue() == f"anna: linked to {sso.issuer}\n"  # the others are still linked
    assert len(entries("auth.identity_linked")) == 2


def test_with_sso_a_password_account_is_told_to_sign_in_with_the_provider_for_step_up(sso: IdentityProvider,
                                                                                       client: Client) -> None:
    client.force_login(make_user("adam", roles.APPROVER))
    response = client.get(reverse("console-step-up") + "?next=/console/approvals/")
    assert response.status_code == 200
    assert "sign in with Test IdP (with your second factor)" in " ".join(response.content.decode().split())
    assert "oidc_states" not in client.session  # no authorization request was started


def test_infosec_enables_an_account_from_the_admin_with_a_reason(client: Client) -> None:
    target = make_user("adam", roles.APPROVER)
    User.objects.filter(pk=target.pk).update(is_active=False)
    client.force_login(make_user("ines", roles.INFOSEC))

    def act(**form: str) -> str:
        return client.post("/admin/auth/user/", {"action": "enable_account", ACTION_CHECKBOX_NAME: [str(target.pk)],
                                                 **form}, follow=True).content.decode()

    assert 'name="reason"' in act() and not entries("auth.account_enabled")  # the reason is asked for first
    assert "Enable account: 1 done" in act(confirm="yes", reason="back from leave (HR-7)")
    target.refresh_from_db()
    assert target.is_active
    enabled, = entries("auth.account_enabled")
    assert enabled.payload == {"account": f"user:{target.pk}", "reason": "back from leave (HR-7)"}


def test_erasing_a_person_takes_their_provider_link_and_they_sign_in_as_someone_new(sso: IdentityProvider) -> None:
    sign_in(Client(), sso, "nora")
    nora = User.objects.get(username="nora")
    pii.data_subject_erase(actor=Actor.user(make_user("ines", roles.INFOSEC)), data_subject=f"user:{nora.pk}",
                           reason="DP-9")

    assert not ExternalIdentity.objects.filter(user=nora).exists()
    client = Client()
    sign_in(client, sso, "nora")  # the provider still knows her: a new account, nothing of the erased one
    assert signed_in_as(client) not in (None, nora.pk)
