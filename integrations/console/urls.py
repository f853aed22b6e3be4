"""The integrations' console pages (included under ``/console/`` by ``web.console.urls``)."""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from integrations.console import siem, webhooks

urlpatterns: list[URLPattern | URLResolver] = [
    path("webhooks/", webhooks.webhooks, name="console-webhooks"),
    path("webhooks/new/", webhooks.webhook_new, name="console-webhook-new"),
    path("webhooks/<int:sub_id>/", webhooks.webhook_detail, name="console-webhook"),
    path("webhooks/<int:sub_id>/edit/", webhooks.webhook_edit, name="console-webhook-edit"),
    path("webhooks/<int:sub_id>/pause/", webhooks.webhook_pause, name="console-webhook-pause"),
    path("webhooks/<int:sub_id>/resume/", webhooks.webhook_resume, name="console-webhook-resume"),
    path("webhooks/<int:sub_id>/delete/", webhooks.webhook_delete, name="console-webhook-delete"),
    path("webhooks/<int:sub_id>/rotate/", webhooks.webhook_rotate, name="console-webhook-rotate"),
    path("webhooks/<int:sub_id>/replay/", webhooks.webhook_replay, name="console-webhook-replay"),
    path("siem/", siem.siem_status, name="console-siem"),
]
