from __future__ import annotations

from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    """Events out of the product: notifications to people, signed webhooks to systems, the SIEM stream.

    It sits above the three domains (it reads the ledger, and asks access and governance who should hear of
    what); nothing but config imports it.
    """

    name = "integrations"
    verbose_name = "Integrations (events out)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported for what they register: the erasure receiver of the notification preferences and queue.
        from integrations import events_webhooks  # noqa: F401  (registers the webhook.* event types)
        from integrations.notifications import services  # noqa: F401
