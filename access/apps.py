from __future__ import annotations

from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = "Access governance"

    def ready(self) -> None:
        from access import resources, selectors  # here: models are loaded only now

        # Datasets are the first kind of resource grants apply to; governance adds its own (access_hooks).
        resources.register(selectors.DATASETS)
