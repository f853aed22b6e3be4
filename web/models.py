"""Delivery plumbing's own rows: the responses kept for ``Idempotency-Key`` replays (web/api/idempotency.py),
and each person's console preferences (web/preferences.py).

Not domain state: no service, no ledger entry. A row is written in the same transaction as the
change its request made, so a crash leaves neither, and deleted once it expires.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models


class IdempotencyRecord(models.Model):
    """The outcome of one unsafe API request sent with an ``Idempotency-Key``, for its retries."""

    #: ``token:<id>`` or ``user:<id>``: keys are per principal, so one caller's key never reaches another's.
    principal = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    #: SHA-256 of method, path with query and body: the same key with another request is refused (422).
    fingerprint = models.CharField(max_length=64)
    method = models.CharField(max_length=8)
    status = models.PositiveSmallIntegerField()
    content_type = models.CharField(max_length=200, blank=True)
    headers = models.JSONField(default=dict)
    #: The response body, or None when it is not kept (a secret shown once, or too large): a retry is
    #: then told what happened (409 ``idempotency_response_not_kept``) and nothing runs twice.
    body = models.BinaryField(null=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["principal", "key"], name="web_idempotency_principal_key"),
        ]

    def __str__(self) -> str:
        return f"{self.principal} {self.key!r} → {self.status}"


class ConsolePreference(models.Model):
    """One person's console settings (``web.preferences``): presentation only, never governance state."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="console_preference")
    #: An IANA zone name (``Europe/Paris``); the console shows times in it, with UTC on hover.
    time_zone = models.CharField(max_length=64, default="UTC")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"user:{self.user_id} {self.time_zone}"
