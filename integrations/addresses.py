"""Whether an address an outbound message would go to is on the public internet (the SSRF rule they share).

Webhook targets (``integrations.webhooks.targets``) and people's chat webhooks
(``integrations.notifications.channels``) both refuse a host that resolves to anything else: loopback,
private (RFC 1918, ULA), link-local (the cloud metadata service at 169.254.169.254), shared, reserved,
unspecified and multicast addresses, including an IPv4 one written as IPv4-mapped IPv6 (``::ffff:10.0.0.1``).
"""
from __future__ import annotations

import ipaddress


def is_public(address: str) -> bool:
    """``address`` (as ``getaddrinfo`` gives it, a zone suffix allowed) is a global unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast
