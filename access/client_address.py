"""The client's address of a request, the one way the product derives it.

Used by the sign-in throttle (django-axes' ``AXES_CLIENT_IP_CALLABLE``) and as the ``origin`` of the
authentication events, so that the address a lockout counts is the address the ledger records.

With ``CLIENT_IP_PROXY_COUNT = 0`` (the default) it is ``REMOTE_ADDR``: the peer of the TCP connection.
Behind N reverse proxies that each append the address they saw to ``X-Forwarded-For`` (compose runs one,
Caddy, which replaces any header the client sent), it is the N-th address from the right of that header:
the one the outermost of our proxies saw. Addresses further left were written by the client and are never
believed. A request carrying fewer than N addresses did not come through the proxies: ``REMOTE_ADDR``.
Anything that is not an IP address gives None (never a client-chosen string as an "address").
"""
from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings


def _valid(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_address(request: Any) -> str | None:
    """The client's IP address of ``request`` (normalised text form), or None when it cannot be known."""
    meta = getattr(request, "META", None) or {}
    remote = _valid(meta.get("REMOTE_ADDR"))
    hops = int(getattr(settings, "CLIENT_IP_PROXY_COUNT", 0))
    if hops <= 0:
        return remote
    forwarded = [part.strip() for part in str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",") if part.strip()]
    if len(forwarded) < hops:
        return remote
    return _valid(forwarded[-hops])
