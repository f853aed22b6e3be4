from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class GovernanceConfig(AppConfig):
    default = True
    name = "governance"
    verbose_name = "Promotion governance"

    def ready(self) -> None:
        # What must register when Django starts: idle_session's sign-in receiver, the Celery
        # tasks (by name, for the worker and for apply_async), and the OpenAPI descriptions of
        # our authentication classes. MLflow is not imported here: governance.registry and
        # governance.sync import it where they call it (about 3 s; every django.setup() paid it).
        from governance import idle_session, tasks  # noqa: F401  (idle_session: stamps each sign-in)
        from governance.api import schema  # noqa: F401


class GovernanceAdminConfig(admin_apps.AdminConfig):
    """The admin with a site that admits users by role (see governance.admin_site)."""

    default = False
    default_site = "governance.admin_site.GovernanceAdminSite"
