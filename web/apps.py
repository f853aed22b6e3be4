from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class WebConfig(AppConfig):
    """Delivery plumbing; its one model keeps Idempotency-Key replays. ``ready`` connects what registers itself."""

    name = "web"
    verbose_name = "Web plumbing"

    def ready(self) -> None:
        # Imported for what they register: idle_session stamps each sign-in and preferences loads the
        # viewer's time zone into the session (user_logged_in receivers); metrics counts task outcomes
        # through Celery signals in every worker; schema registers the OpenAPI descriptions of the
        # authentication classes.
        # Tracing, when asked for (settings.OTEL_ENABLED): in every process that sets Django up, web and worker.
        from django.conf import settings

        from web import idle_session, metrics, preferences  # noqa: F401
        from web.api import schema  # noqa: F401

        if settings.OTEL_ENABLED:
            from web import otel

            otel.configure()


class GovernanceAdminConfig(admin_apps.AdminConfig):
    """The admin with a site that admits users by role (see web.admin_site)."""

    default = False
    default_site = "web.admin_site.GovernanceAdminSite"
