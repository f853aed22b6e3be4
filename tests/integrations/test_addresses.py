"""The SSRF rule webhook targets and chat webhooks share (integrations/addresses.py)."""
from __future__ import annotations

import pytest

from integrations.addresses import is_public
from integrations.notifications.channels import check_chat_url


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "100.64.0.1",
                                     "0.0.0.0", "::1", "fd00::1", "fe80::1%eth0", "::ffff:10.0.0.1",
                                     "::ffff:169.254.169.254", "224.0.0.1", "ff02::1"])
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111", "::ffff:93.184.216.34"])
def test_public_addresses_pass(address: str) -> None:
    assert is_public(address)


@pytest.mark.parametrize("host", ["[::ffff:10.0.0.1]", "[::ffff:169.254.169.254]", "169.254.169.254"])
def test_a_chat_webhook_on_an_internal_address_is_refused_however_written(host: str, settings) -> None:  # type: ignore[no-untyped-def]
    settings.NOTIFY_CHAT_ALLOW_PRIVATE = False
    with pytest.raises(ValueError, match="public address"):
        check_chat_url(f"https://{host}/hooks/T000/B000")
