from __future__ import annotations

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit ledger"

    def ready(self) -> None:
        # pii registers itself as the ledger's personal-data sealing (audit.ledger.personal_data_register);
        # tasks connects the receivers that queue work the ledger core asks for (audit/signals.py),
        # in the web process, the worker, the commands and the tests alike.
        from audit import pii, tasks  # noqa: F401
