"""OpenAPI descriptions of our authentication classes (drf-spectacular extensions).

Imported from ``governance.apps`` so the schema names both ways in: a service
account's Bearer token and a signed-in person's session cookie (with CSRF).
"""
from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "web.api.auth.TokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mlg_<prefix>_<secret>",
            "description": "A service account's API token (docs/api.md); each operation names the scope it needs.",
        }


class ConsoleSessionScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "web.api.auth.ConsoleSessionAuthentication"
    name = "session"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "A person's console session; unsafe methods also need the X-CSRFToken header.",
        }
