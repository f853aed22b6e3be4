from __future__ import annotations

from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    default = True
    name = "governance"
    verbose_name = "Promotion governance"

    def ready(self) -> None:
        # Imported for what they register. tasks: the Celery tasks (by name, for the worker and for
        # apply_async) and their receivers; MLflow is not imported here (governance.registry and
        # governance.sync import it where they call it: about 3 s that every django.setup() paid).
        # events: the ledger event types governance writes. ledger_hooks: a failed ledger
        # verification or a stalled witness quorum becomes a compliance violation. ledger_exports:
        # what a model scope of a ledger export means, and the model's sections of its report.
        # access_hooks: grants on models and environments; lineage follows the catalog.
        from governance import access_hooks, events, ledger_exports, ledger_hooks, tasks  # noqa: F401

        access_hooks.connect()
