"""Signals of the access domain, for the domains above it (access imports none of them).

All are sent inside the service's transaction, with ``send`` (a receiver's exception propagates and
rolls the change back), so what a receiver writes commits or rolls back with the change itself.
Governance connects its receivers in ``governance.access_hooks`` (from its ``AppConfig.ready``).
"""
from __future__ import annotations

from django.dispatch import Signal

#: A dataset was registered (``dataset.created`` is recorded). Keyword arguments: ``dataset``, ``actor``
#: (an ``audit.ledger.Actor``). Governance links the mirrored versions whose MLflow inputs name it.
dataset_created = Signal()

#: A dataset's classification is about to change: sent before the dataset row is locked, so receivers can lock
#: what depends on it first (the lock order, ``access.lock_objects``). Keyword argument: ``dataset``.
dataset_reclassifying = Signal()

#: A dataset or one of its fields was (re)classified and recorded. Keyword arguments: ``dataset`` (locked,
#: with its new ``effective_level``), ``previous_effective_level``, ``actor``. Governance re-derives the
#: classification of the versions trained on it.
dataset_reclassified = Signal()
