from __future__ import annotations

from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    default = True
    name = "governance"
    verbose_name = "Promotion governance"

    def ready(self) -> None:
        # Registers the Celery tasks (by name, for the worker and for apply_async). MLflow is not
        # imported here: governance.registry and governance.sync import it where they call it
        # (about 3 s, which every django.setup() paid: manage.py, each test run, each subprocess).
        from governance import access_hooks, tasks  # noqa: F401

        access_hooks.connect()  # grants on models and environments; lineage follows the catalog
