"""A real OpenID provider for the suite: ``oidc_provider`` (session-scoped).

It runs tests/idp/server.js -- panva's oidc-provider, OpenID Certified -- under the system Node, with
one confidential client for the console (code flow, PKCE S256 required, ``client_secret_post`` as
mozilla-django-oidc sends by default), a fresh RS256 key per run and its own sign-in pages: a password
form, then a one-time-code page when the client asks for the two-factor acr (``acr_values``) or the
person ticks "Use my second factor". The ID token carries ``groups``, ``amr``, ``acr``, ``auth_time``,
``email``, ``name`` and ``preferred_username``.

The people are the cast of tests/personas.py, by username, each with the IdP groups that map to their
roles (``ROLE_GROUPS``, the inverse of ``OIDC_ROLE_MAP``), password ``IDP_PASSWORD`` and one-time code
``OTP``; plus ``nora``, who has an IdP account and no local user (first sign-in creates her).

Redirect URIs: ``/console/sso/callback/`` (and ``/console/login/`` after logout) on 127.0.0.1,
localhost and Django's ``testserver``, on any port -- a convenience of this test provider only (see
server.js), because the relying party's port is picked at run time.

Registered for the whole suite in tests/conftest.py ``pytest_plugins``. Skips (with the reason) only
when ``node`` is not installed; a failing ``npm ci`` or server is an error, not a skip.
"""
from __future__ import annotations

import fcntl
import http.cookiejar
import json
import queue
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from access import roles
from tests.personas import CAST

IDP_DIR = Path(__file__).resolve().parent / "idp"
CLIENT_ID = "mlg-console"
CLIENT_SECRET = "test-idp-client-secret"
IDP_PASSWORD = "idp-pw"
OTP = "123456"
ACR_PASSWORD = "urn:mlg:loa:1"
ACR_2FA = "urn:mlg:loa:2fa"
CALLBACK_PATH = "/console/sso/callback/"
LOGOUT_RETURN_PATH = "/console/login/"
RP_HOSTS = ("127.0.0.1", "localhost", "testserver")
STARTUP_TIMEOUT = 60.0

#: role → the IdP group that grants it; OIDC_ROLE_MAP is its inverse.
ROLE_GROUPS: dict[str, str] = {
    roles.APPROVER: "ml-approvers",
    roles.INFOSEC: "sec-team",
    roles.AUDITOR: "audit-team",
    roles.MODEL_OWNER: "ml-owners",
    roles.DATA_STEWARD: "data-stewards",
    roles.MODEL_RISK: "model-risk-team",
    roles.BREAK_GLASS: "break-glass-oncall",
}
ROLE_MAP: dict[str, str] = {group: role for role, group in ROLE_GROUPS.items()}
#: A group every IdP account has and no role maps from (it must change nothing).
UNMAPPED_GROUP = "all-staff"


@dataclass(frozen=True)
class Account:
    username: str
    password: str
    otp: str
    groups: tuple[str, ...]
    name: str
    email: str

    def as_json(self) -> dict[str, Any]:
        return {"username": self.username, "password": self.password, "otp": self.otp,
                "groups": list(self.groups), "name": self.name, "email": self.email}


def make_account(username: str, role_names: tuple[str, ...] = (), *, extra_groups: tuple[str, ...] = ()) -> Account:
    groups = tuple(ROLE_GROUPS[role] for role in role_names) + extra_groups + (UNMAPPED_GROUP,)
    return Account(username=username, password=IDP_PASSWORD, otp=OTP, groups=groups,
                   name=username.replace("-", " ").title(), email=f"{username}@example.test")


def persona_accounts() -> dict[str, Account]:
    """The cast of tests/personas.py at the IdP, plus ``nora`` (no local user yet, model-owner)."""
    accounts = {username: make_account(username, role_names) for username, role_names in CAST.values()}
    accounts["nora"] = make_account("nora", (roles.MODEL_OWNER,))
    return accounts


def rp_redirect_uris(path: str, hosts: tuple[str, ...] = RP_HOSTS) -> list[str]:
    """The registered redirect URIs for ``path``; the test provider lets each match on any port."""
    return [f"http://{host}{path}" for host in hosts]


def node_available() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def npm_ci(idp_dir: Path = IDP_DIR) -> None:
    """``npm ci`` in tests/idp unless node_modules is already installed, under a file lock so that
    parallel xdist workers install once."""
    marker = idp_dir / "node_modules" / ".package-lock.json"
    if marker.exists():
        return
    with open(idp_dir / ".npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if marker.exists():
                return
            done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=idp_dir,
                                  capture_output=True, text=True, timeout=600, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"npm ci in {idp_dir} failed:\n{done.stdout}\n{done.stderr}")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass
class IdentityProvider:
    """A running test IdP: where it is, its client and its people."""

    issuer: str
    client_id: str
    client_secret: str
    accounts: dict[str, Account]
    process: subprocess.Popen[str] = field(repr=False)
    discovery: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def authorization_endpoint(self) -> str:
        return str(self.discovery["authorization_endpoint"])

    @property
    def token_endpoint(self) -> str:
        return str(self.discovery["token_endpoint"])

    @property
    def userinfo_endpoint(self) -> str:
        return str(self.discovery["userinfo_endpoint"])

    @property
    def jwks_endpoint(self) -> str:
        return str(self.discovery["jwks_uri"])

    @property
    def end_session_endpoint(self) -> str:
        return str(self.discovery["end_session_endpoint"])

    def settings(self) -> dict[str, Any]:
        """The Django settings that point the console at this IdP (for ``settings`` overrides)."""
        return {
            "OIDC_RP_CLIENT_ID": self.client_id,
            "OIDC_RP_CLIENT_SECRET": self.client_secret,
            "OIDC_OP_ISSUER": self.issuer,
            "OIDC_OP_AUTHORIZATION_ENDPOINT": self.authorization_endpoint,
            "OIDC_OP_TOKEN_ENDPOINT": self.token_endpoint,
            "OIDC_OP_USER_ENDPOINT": self.userinfo_endpoint,
            "OIDC_OP_JWKS_ENDPOINT": self.jwks_endpoint,
            "OIDC_OP_LOGOUT_ENDPOINT": self.end_session_endpoint,
            "OIDC_RP_SIGN_ALGO": "RS256",
            "OIDC_RP_SCOPES": "openid email profile",
            "OIDC_USE_PKCE": True,
            "OIDC_TOKEN_USE_BASIC_AUTH": False,
            "OIDC_GROUPS_CLAIM": "groups",
            "OIDC_ROLE_MAP": dict(ROLE_MAP),
            "OIDC_PROVIDER_NAME": "Test IdP",
            "OIDC_STEP_UP_ACR": ACR_2FA,
            "OIDC_MFA_ACR": [ACR_2FA],
        }

    def env(self) -> dict[str, str]:
        """The same as environment strings (booleans 1/0, the role map as JSON, lists comma-separated)."""
        out: dict[str, str] = {}
        for name, value in self.settings().items():
            if isinstance(value, bool):
                out[name] = "1" if value else "0"
            elif isinstance(value, dict):
                out[name] = json.dumps(value, sort_keys=True)
            elif isinstance(value, list):
                out[name] = ",".join(value)
            else:
                out[name] = str(value)
        return out

    def browser(self) -> IdpBrowser:
        """A person's browser at this IdP (its own cookie jar) to sign in with."""
        return IdpBrowser(self)


class SignInRefused(AssertionError):
    """The IdP showed its form again (wrong password or code) instead of redirecting back."""

    def __init__(self, page: str) -> None:
        super().__init__(error_of(page) or "the IdP did not redirect back")
        self.page = page


def error_of(page: str) -> str:
    match = re.search(r'class="error"[^>]*>(.*?)</p>', page, re.S)
    return unescape(match.group(1)).strip() if match else ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class IdpBrowser:
    """Drives the IdP's pages with urllib, as a browser would, and stops at the redirect back to the
    relying party (whatever host that is: ``testserver`` is never fetched)."""

    def __init__(self, idp: IdentityProvider) -> None:
        self.idp = idp
        self.cookies = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect)

    def request(self, url: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        """(status, Location or "", body) of one request, redirects not followed."""
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with self._opener.open(urllib.request.Request(url, data=data), timeout=20) as response:
                return response.status, response.headers.get("Location", ""), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Location", ""), error.read().decode()

    def follow(self, url: str, form: dict[str, str] | None = None) -> tuple[str, str]:
        """Follow redirects on the IdP; returns (the URL it left the IdP for or "", the last page)."""
        status, location, body = self.request(url, form)
        for _ in range(10):
            if status not in (301, 302, 303, 307, 308):
                return "", body
            target = urllib.parse.urljoin(url, location)
            if not target.startswith(self.idp.issuer + "/"):
                return target, body
            url = target
            status, location, body = self.request(url)
        raise AssertionError("too many redirects at the IdP")

    def sign_in(self, authorization_url: str, username: str, *, password: str | None = None,
                otp: str | bool | None = None) -> str:
        """Sign in from ``authorization_url`` (the RP's redirect to the IdP); returns the callback URL
        the IdP sends the browser back to (``?code=&state=`` or ``?error=``).

        ``otp``: True (the account's code) or a code string to give when asked; when given and the form
        offers "Use my second factor", it is ticked. ``password`` defaults to the account's. Raises
        :class:`SignInRefused` if the IdP shows a form again (wrong password or code)."""
        account = self.idp.accounts.get(username)
        if password is None:
            password = account.password if account else ""
        code = (account.otp if account else "") if otp is True else (otp or None)
        back, page = self.follow(authorization_url)
        if back:
            return back  # an existing session at the IdP answered without a form
        action = _form_action(page, self.idp.issuer)
        form = {"username": username, "password": password}
        if code and 'name="use_second_factor"' in page:
            form["use_second_factor"] = "1"
        back, page = self.follow(action, form)
        if back:
            return back
        if 'name="otp"' not in page:
            raise SignInRefused(page)
        if not code:
            raise SignInRefused(page)
        back, page = self.follow(_form_action(page, self.idp.issuer), {"otp": code})
        if back:
            return back
        raise SignInRefused(page)

    def sign_out(self, end_session_url: str) -> str:
        """Follow the RP's logout redirect, confirm as the page's script would; returns where the IdP
        sends the browser back (the post-logout redirect URI) or ""."""
        back, page = self.follow(end_session_url)
        if back:
            return back
        action = _form_action(page, self.idp.issuer)
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
        fields["logout"] = "yes"
        back, _ = self.follow(action, fields)
        return back


def _form_action(page: str, issuer: str) -> str:
    match = re.search(r'<form[^>]*action="([^"]+)"', page)
    if not match:
        raise AssertionError(f"no form on the IdP page:\n{page[:2000]}")
    return urllib.parse.urljoin(issuer + "/", unescape(match.group(1)))


def start(accounts: dict[str, Account], workdir: Path, *, port: int = 0, host: str = "127.0.0.1",
          redirect_uris: list[str] | None = None, post_logout_redirect_uris: list[str] | None = None,
          client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> IdentityProvider:
    """Start tests/idp/server.js (npm ci first if needed) and wait until its discovery answers."""
    npm_ci()
    accounts_file = workdir / "idp-accounts.json"
    accounts_file.write_text(json.dumps([a.as_json() for a in accounts.values()]))
    command = ["node", str(IDP_DIR / "server.js"), "--host", host, "--port", str(port),
               "--accounts", str(accounts_file), "--client-id", client_id, "--client-secret", client_secret]
    for uri in redirect_uris or rp_redirect_uris(CALLBACK_PATH):
        command += ["--redirect-uri", uri]
    for uri in post_logout_redirect_uris or rp_redirect_uris(LOGOUT_RETURN_PATH):
        command += ["--post-logout-redirect-uri", uri]
    log = open(workdir / "idp.log", "w")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True,
                               start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or ()], daemon=True).start()
    try:
        line = lines.get(timeout=STARTUP_TIMEOUT)
    except queue.Empty:
        line = ""
    if not line.startswith("READY "):
        stop(process)
        raise RuntimeError(f"the test IdP did not start: {line!r}\n{(workdir / 'idp.log').read_text()}")
    issuer = line.split(" ", 1)[1].strip()
    with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=20) as response:
        discovery = json.load(response)
    return IdentityProvider(issuer=issuer, client_id=client_id, client_secret=client_secret,
                            accounts=accounts, process=process, discovery=discovery)


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdentityProvider]:
    """The suite's running test IdP (one per xdist worker), with the personas as its people."""
    if not node_available():
        pytest.skip("node/npm is not installed: the test OpenID provider (tests/idp, oidc-provider) cannot run")
    idp = start(persona_accounts(), tmp_path_factory.mktemp("idp"))
    try:
        yield idp
    finally:
        stop(idp.process)
