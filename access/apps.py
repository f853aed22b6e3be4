from __future__ import annotations

from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = "Access governance"

    def ready(self) -> None:
        # events: the ledger event types access writes. ledger_hooks: the ledger asks access who may read,
        # export and reveal (audit.policy), and tells it of refused reveals. authn: stores how each sign-in was made.
        from access import authn, events, ledger_hooks, resources, selectors  # noqa: F401  # here: models are loaded only now

        # Datasets are the first kind of resource grants apply to; governance adds its own (access_hooks).
        resources.register(selectors.DATASETS)
