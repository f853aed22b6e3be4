"""``manage.py oidc_discover <issuer>``: the OIDC_OP_* settings of a provider, from its discovery document.

The console never fetches discovery at start-up (a slow provider must not stop it from starting);
run this once and put the printed lines in the environment. It checks that the document's ``issuer``
is the one asked for (OpenID Connect Discovery 1.0, section 4.3), so a mistyped or spoofed URL does
not end up configured silently.
"""
from __future__ import annotations

import json
import urllib.request
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

_FIELDS = {
    "OIDC_OP_ISSUER": "issuer",
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
    "OIDC_OP_LOGOUT_ENDPOINT": "end_session_endpoint",
}


class Command(BaseCommand):
    help = "Print the OIDC_OP_* settings of an OpenID provider from <issuer>/.well-known/openid-configuration."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("issuer", help="the provider's issuer URL, e.g. https://login.example.com/realms/ml")
        parser.add_argument("--timeout", type=float, default=10.0)

    def handle(self, *args: Any, **options: Any) -> None:
        issuer = str(options["issuer"]).rstrip("/")
        if not issuer.startswith(("https://", "http://")):
            raise CommandError("the issuer must be an http(s) URL")
        url = f"{issuer}/.well-known/openid-configuration"
        try:
            with urllib.request.urlopen(url, timeout=options["timeout"]) as response:  # noqa: S310 (http(s) only)
                document = json.load(response)
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {url}: {exc}") from None
        if not isinstance(document, dict) or str(document.get("issuer", "")).rstrip("/") != issuer:
            named = document.get("issuer") if isinstance(document, dict) else "?"
            raise CommandError(f"{url} names another issuer ({named})")
        for name, key in _FIELDS.items():
            value = document.get(key)
            if value:
                self.stdout.write(f"{name}={value}")
            else:
                self.stdout.write(f"# {name}: the provider publishes no {key}")
        algs = document.get("id_token_signing_alg_values_supported") or []
        chosen = next((a for a in ("RS256", "ES256") if a in algs), None)
        self.stdout.write(f"OIDC_RP_SIGN_ALGO={chosen}" if chosen else f"# no RS256/ES256 among {algs}")
        if "S256" not in (document.get("code_challenge_methods_supported") or ["S256"]):
            self.stdout.write("# warning: the provider does not list PKCE S256")
