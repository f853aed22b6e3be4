from __future__ import annotations

from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    default = True
    name = "governance"
    verbose_name = "Promotion governance"

    def ready(self) -> None:
        # tasks: loads MLflow with the app, not inside the first request that approves a promotion
        # (an import under the import lock stalls every thread of that worker for seconds).
        # events: the ledger event types governance writes.
        # ledger_hooks: a failed ledger verification or a stalled witness quorum becomes a compliance violation.
        # ledger_exports: what a model scope of a ledger export means, and the model's sections of its report.
        from governance import events, ledger_exports, ledger_hooks, tasks  # noqa: F401
