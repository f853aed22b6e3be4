from __future__ import annotations

from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = "Access governance"

    def ready(self) -> None:
        # events: the ledger event types access writes. ledger_hooks: the ledger asks access who may read,
        # export and reveal (audit.policy), and tells it of refused reveals. authn: stores how each sign-in was made
        # (and records it). auth_events: records failed sign-ins, lockouts and sign-outs.
        from access import (  # noqa: F401  # here: models are loaded only now
            auth_events,
            authn,
            events,
            ledger_hooks,
            resources,
            selectors,
        )

        # Datasets are the first kind of resource grants apply to; governance adds its own (access_hooks).
        resources.register(selectors.DATASETS)
