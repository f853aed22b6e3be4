"""Concurrent first uses of an API token from one address (PostgreSQL, real transactions on their own
connections): the unique constraint on (token, address hash) lets one of them write the ledger entry."""
from __future__ import annotations

from typing import Any

from access.models import ApiToken, ApiTokenAddress
from access.services.authentication import api_token_address_record
from audit.models import PendingEntry
from tests.audit.integration.helpers import race


def test_concurrent_first_uses_from_one_address_write_one_entry(
    on_postgres: None, committing_db: None, token_for: Any,
) -> None:
    """Four requests at once from a new address (PostgreSQL, real transactions): one entry, the rest nothing."""
    token = token_for(["ledger:read"]).token
    for n in range(3):
        address = f"198.51.100.{50 + n}"
        errors = race(*[lambda a=address: api_token_address_record(token=ApiToken.objects.get(pk=token.pk), origin=a)
                        for _ in range(4)])
        assert errors == []
    assert ApiTokenAddress.objects.filter(token=token).count() == 4  # 127.0.0.1 at set-up, and three
    recorded = PendingEntry.objects.filter(event_type="auth.token_first_use_from_address",
                                           payload_json__contains=f'"token_id":{token.pk}}}')
    assert recorded.count() == 4
