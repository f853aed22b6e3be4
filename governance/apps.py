from __future__ import annotations

from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    default = True
    name = "governance"
    verbose_name = "Promotion governance"

    def ready(self) -> None:
        # Loads MLflow with the app, not inside the first request that approves a promotion
        # (an import under the import lock stalls every thread of that worker for seconds).
        from governance import access_hooks, tasks  # noqa: F401

        access_hooks.connect()  # grants on models and environments; lineage follows the catalog
