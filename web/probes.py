"""Answers the probes (``/healthz``, ``/readyz``) before anything reads the Host header.

Probes come from where no public host name is used: the image's ``HEALTHCHECK`` on
``127.0.0.1:8000``, a kubelet on the pod's IP, a load balancer's health check on the node's
address. Django's host validation (``ALLOWED_HOSTS``, run by the first ``request.get_host()``,
e.g. in ``CommonMiddleware``) would answer them 400. This middleware, first in ``MIDDLEWARE``,
hands exactly these two paths (``GET``/``HEAD``) to their views in ``web.health`` and returns
their answer; every other request goes on to host validation as before.

Why this is safe (docs/security.md "Host header"): host validation protects what is built from
the Host header (absolute URLs, redirects, cache keys). The probe views build nothing from it,
read no session or cookie, and answer fixed words only; so any Host may ask them. They also skip
the rest of the middleware (request log, metrics, security headers): their JSON carries no
markup and nothing to frame.
"""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

PROBE_PATHS = {"/healthz", "/readyz"}


class ProbeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info in PROBE_PATHS and request.method in ("GET", "HEAD"):
            from web import health  # the views: /readyz is the web process's own readiness (web/health.py)

            view = health.healthz if request.path_info == "/healthz" else health.readyz
            return view(request)
        return self.get_response(request)
