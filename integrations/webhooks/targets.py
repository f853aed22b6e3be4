"""Which URLs a webhook may be sent to, and the address it is sent to (SSRF controls).

A target is ``https://`` (``http://`` only with ``WEBHOOK_ALLOW_HTTP``), without credentials, and every
address its host resolves to must be public: loopback, private (RFC 1918, ULA), link-local (the cloud
metadata service at 169.254.169.254), shared, multicast, reserved and unspecified addresses are refused unless
``WEBHOOK_ALLOW_PRIVATE_TARGETS`` is set. The host is resolved again at every delivery and the connection goes
to the address that was checked (``resolve``), so a DNS answer that changes after the check (rebinding) cannot
redirect a delivery inside the network.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from integrations.addresses import is_public
from integrations.webhooks.errors import TargetRefused

URL_MAX = 2000


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def parse(url: object) -> Target:
    """The target of ``url`` (``TargetRefused`` with the reason); no DNS lookup."""
    if not isinstance(url, str) or not url.strip():
        raise TargetRefused("the target URL is required")
    url = url.strip()
    if len(url) > URL_MAX:
        raise TargetRefused(f"the target URL is longer than {URL_MAX} characters")
    # Whitespace and control characters would split the request line or a header (request smuggling).
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url) or not url.isascii():
        raise TargetRefused("the target URL must be ASCII without spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"the target URL is not valid: {exc}") from None
    allowed = ("https", "http") if settings.WEBHOOK_ALLOW_HTTP else ("https",)
    if parts.scheme not in allowed:
        raise TargetRefused("the target URL must be https://" + (" or http://" if len(allowed) > 1 else ""))
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("the target URL must not carry credentials (user:password@)")
    host = parts.hostname
    if not host:
        raise TargetRefused("the target URL has no host")
    if parts.fragment:
        raise TargetRefused("the target URL must not have a #fragment")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path)


def address_allowed(address: str) -> bool:
    return bool(settings.WEBHOOK_ALLOW_PRIVATE_TARGETS) or is_public(address)


def resolve(target: Target) -> str:
    """The address to connect to: the first one the host resolves to, once every address was found public.

    Raises ``TargetRefused`` when the host does not resolve or any of its addresses is not allowed (a mixed
    answer is refused whole: a client would otherwise be steered to the private one).
    """
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(f"the target host {target.host} does not resolve ({exc})") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise TargetRefused(f"the target host {target.host} does not resolve")
    refused = [a for a in addresses if not address_allowed(a)]
    if refused:
        raise TargetRefused(f"the target host {target.host} resolves to a non-public address ({refused[0]}): "
                            "loopback, private, link-local and reserved addresses are refused")
    return addresses[0]


def check(url: object) -> Target:
    """``parse`` then ``resolve``: the checks a subscription's URL passes when it is set."""
    target = parse(url)
    resolve(target)
    return target
