"""The integrations' rows in the admin: read-only raw views (web.admin_site) for InfoSec and auditors.

The notification queue is there for operations (what is stuck, why); the preferences are not (each holds a
person's chat webhook URL, a secret: docs/notifications.md), nor the webhook subscriptions (their signing
secrets). The SIEM sinks are settings; their cursors are on the console's SIEM page.
"""
from __future__ import annotations

from django.contrib import admin

from integrations.models import Notification
from web.admin_site import RawViewAdmin


@admin.register(Notification)
class NotificationAdmin(RawViewAdmin):
    list_display = ("id", "recipient_id", "category", "source", "state", "channel", "due_at", "sent_at", "attempts",
                    "last_error")
    list_filter = ("state", "category", "channel")
    exclude = ("claim_token",)
