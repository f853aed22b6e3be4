"""Start and drive the test OpenID provider (tests/idp/server.js); standard library only.

Used by the suite's ``oidc_provider`` fixture (tests/identity_provider.py) and by ``dev.py demo --sso``,
which imports this module before any Django is set up. See docs/identity.md, "The test identity
provider".
"""
from __future__ import annotations

import fcntl
import hashlib
import http.cookiejar
import json
import os
import queue
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any

IDP_DIR = Path(__file__).resolve().parent
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
STAMP_NAME = ".installed-lock-sha256"

#: role → the IdP group that grants it; OIDC_ROLE_MAP is its inverse.
#: (The role names of access.roles, spelled out: this module imports no Django; a test keeps them equal.)
ROLE_GROUPS: dict[str, str] = {
    "approver": "ml-approvers",
    "infosec": "sec-team",
    "auditor": "audit-team",
    "model-owner": "ml-owners",
    "data-steward": "data-stewards",
    "model-risk": "model-risk-team",
    "break-glass": "break-glass-oncall",
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


def make_account(username: str, role_names: tuple[str, ...] = (), *, extra_groups: tuple[str, ...] = (),
                 password: str = IDP_PASSWORD, otp: str = OTP, name: str | None = None,
                 email: str | None = None) -> Account:
    """An IdP account with the groups of ``role_names`` (ROLE_GROUPS), ``extra_groups`` and UNMAPPED_GROUP."""
    groups = (*(ROLE_GROUPS[role] for role in role_names), *extra_groups, UNMAPPED_GROUP)
    return Account(username=username, password=password, otp=otp, groups=groups,
                   name=name or username.replace("-", " ").title(), email=email or f"{username}@example.test")


def rp_redirect_uris(path: str, hosts: tuple[str, ...] = RP_HOSTS) -> list[str]:
    """The registered redirect URIs for ``path``; the test provider lets each match on any port."""
    return [f"http://{host}{path}" for host in hosts]


def node_available() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def _lock_digest(idp_dir: Path) -> str:
    return hashlib.sha256((idp_dir / "package-lock.json").read_bytes()).hexdigest()


def installed(idp_dir: Path = IDP_DIR) -> bool:
    """node_modules holds exactly what package-lock.json pins (``npm ci`` ran since the lock last changed)."""
    stamp = idp_dir / "node_modules" / STAMP_NAME
    return stamp.exists() and stamp.read_text() == _lock_digest(idp_dir)


def npm_ci(idp_dir: Path = IDP_DIR) -> None:
    """``npm ci`` in tests/idp (the registry's packages exactly as package-lock.json pins them, with their
    integrity hashes) unless already done for this lock; under a file lock, so that parallel xdist
    workers and dev.py install once. Raises RuntimeError with npm's output when it fails."""
    if installed(idp_dir):
        return
    with open(idp_dir / ".npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if installed(idp_dir):
                return
            done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=idp_dir,
                                  capture_output=True, text=True, timeout=600, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"npm ci in {idp_dir} failed:\n{done.stdout}\n{done.stderr}")
            (idp_dir / "node_modules" / STAMP_NAME).write_text(_lock_digest(idp_dir))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass
class IdentityProvider:
    """A running test IdP: where it is, its client and its people."""

    issuer: str
    client_id: str
    client_secret: str
    accounts: dict[str, Account]
    process: subprocess.Popen[str] | None = field(repr=False)  # None: not started here
    discovery: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def at(cls, issuer: str, *, client_id: str = CLIENT_ID, client_secret: str = "",
           accounts: dict[str, Account] | None = None) -> IdentityProvider:
        """One already running (the demo's), found by its discovery document."""
        with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=20) as response:
            discovery = json.load(response)
        return cls(issuer=issuer, client_id=client_id, client_secret=client_secret, accounts=accounts or {},
                   process=None, discovery=discovery)

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
               "--accounts", str(accounts_file), "--client-id", client_id]
    for uri in redirect_uris or rp_redirect_uris(CALLBACK_PATH):
        command += ["--redirect-uri", uri]
    for uri in post_logout_redirect_uris or rp_redirect_uris(LOGOUT_RETURN_PATH):
        command += ["--post-logout-redirect-uri", uri]
    # Its own session (process group), as dev.py stops its children; stderr to a log the error quotes.
    with open(workdir / "idp.log", "w") as log:
        # The secret in the environment, not in the command line that ps shows to every user.
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True,
                                   env=dict(os.environ, IDP_CLIENT_SECRET=client_secret))
    lines: queue.Queue[str] = queue.Queue()

    def read_lines() -> None:  # a thread, so the wait for READY has a timeout
        for output_line in process.stdout or ():
            lines.put(output_line)

    threading.Thread(target=read_lines, daemon=True).start()
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


def stop(process: subprocess.Popen[str] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
