"""Lets the probes (``/healthz``, ``/readyz``) through whatever the Host header says.

Probes come from where no public host name is used: the image's ``HEALTHCHECK`` on
``127.0.0.1:8000``, a kubelet on the pod's IP, a load balancer's health check on the node's
address. Django's host validation (``ALLOWED_HOSTS``, run by the first ``request.get_host()``,
e.g. in ``CommonMiddleware``) would answer them 400. This middleware, first in ``MIDDLEWARE``,
gives exactly these two paths (``GET``/``HEAD``) a fixed host, ``probe.invalid`` (RFC 6761: it
can never name a real host), in place of the one they sent; the request then goes through the
rest of the middleware as any other (request id, security headers, metrics, request log). Every
other request keeps its Host and its validation.

Why this is safe (docs/security.md): host validation protects what is built from the Host header
(absolute URLs, redirects, cache keys). The probe views build nothing from it, read no session or
cookie and answer fixed words; and what they would build names ``probe.invalid``, never the
caller's value. They are exempt from the HTTPS redirect (``SECURE_REDIRECT_EXEMPT``).
"""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

PROBE_PATHS = frozenset({"/healthz", "/readyz"})
PROBE_HOST = "probe.invalid"


def _probe_host() -> str:
    return PROBE_HOST


class ProbeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info in PROBE_PATHS and request.method in ("GET", "HEAD"):
            request.get_host = _probe_host  # type: ignore[method-assign]
        return self.get_response(request)
