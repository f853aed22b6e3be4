"""Refusals of the webhook services: ``ValueError``s whose message says why, raised before anything is written."""
from __future__ import annotations


class WebhookError(ValueError):
    """Bad input for a subscription (URL, filters, seq, reason)."""

    code = "invalid"


class NotPermitted(WebhookError):
    """Only active InfoSec manages webhook subscriptions."""

    code = "not_permitted"


class TargetRefused(WebhookError):
    """The target URL is not allowed: wrong scheme, credentials in it, or an address that is not public (SSRF)."""

    code = "target_refused"
