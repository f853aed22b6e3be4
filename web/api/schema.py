"""OpenAPI: descriptions of our authentication classes (drf-spectacular extensions) and the schema
class of every view (``AutoSchema``: the ``Idempotency-Key`` header and the retryable problems).

Imported from ``web.apps`` so the schema names both ways in: a service
account's Bearer token and a signed-in person's session cookie (with CSRF).
"""
from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiParameter


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


# --- Idempotency-Key on every unsafe operation (web/api/idempotency.py) -------------------------------

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    name="Idempotency-Key",
    location=OpenApiParameter.HEADER,
    type=str,
    required=False,
    description=(
        "Makes a retry of this request safe (docs/api.md, *Retrying*): 1-255 printable ASCII characters, "
        "unique per request you mean (a UUID). Sent again with the same request by the same caller, the "
        "stored response is replayed with `Idempotent-Replayed: true`; with a different request it is a 422 "
        "`idempotency_key_reused`; while the first is still running a 409 `idempotency_in_progress` with "
        "`Retry-After`. Kept for `IDEMPOTENCY_KEY_TTL_HOURS` (24 h by default)."
    ),
)
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema, plus on every unsafe operation the ``Idempotency-Key`` header and the
    problems it can answer (400 malformed key, 409 in progress, 422 key reused), and on every
    operation the 503 of a dependency outage (``unavailable``, with ``Retry-After``)."""

    def get_override_parameters(self) -> list[Any]:
        params = list(super().get_override_parameters())
        if self.method.upper() in UNSAFE_METHODS:
            params.append(IDEMPOTENCY_KEY_PARAMETER)
        return params

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        from web.api.docs import ProblemOut
        from web.api.problems import CONTENT_TYPE

        bodies: dict[str, Any] = super()._get_response_bodies(direction)
        extra = ["503"]
        if self.method.upper() in UNSAFE_METHODS:
            extra += ["400", "409", "422"]
        for code in extra:
            if code not in bodies:
                bodies[code] = self._get_response_for_code(  # type: ignore[no-untyped-call]
                    ProblemOut, code, media_types=[CONTENT_TYPE], direction=direction)
        return bodies
