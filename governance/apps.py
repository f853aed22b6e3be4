from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class GovernanceConfig(AppConfig):
    default = True
    name = "governance"
    verbose_name = "Promotion governance"

    def ready(self) -> None:
        # Registers the OpenAPI descriptions of our authentication classes.
        # Loads MLflow with the app, not inside the first request that approves a promotion
        # (an import under the import lock stalls every thread of that worker for seconds).
        from governance import idle_session, tasks  # noqa: F401  (idle_session: stamps each sign-in)
        from governance.api import schema  # noqa: F401


class GovernanceAdminConfig(admin_apps.AdminConfig):
    """The admin with a site that admits users by role (see governance.admin_site)."""

    default = False
    default_site = "governance.admin_site.GovernanceAdminSite"
