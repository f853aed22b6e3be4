"""What the ledger announces to the domains above it (Django signals, sent synchronously).

- ``integrity_failed(subject, summary, details)``: a verification run found the ledger broken, or a
  checkpoint missed the witness quorum's deadline. Sent inside the transaction that records the
  outcome, so what a receiver writes (governance records a ``compliance.violation``:
  ``governance/ledger_hooks.py``) commits or rolls back with it; a receiver's error propagates.
- ``subject_erased(data_subject)``: a data subject's personal data was erased (``data_subject_erase``,
  by hand or by retention). Sent inside the erasing transaction, so what a receiver deletes (web deletes
  the person's console preferences) goes or stays with the erasure; a receiver's error propagates.
- ``reveal_refused(user, seq)``: someone who may not reveal personal data asked to. Sent outside any
  transaction of the ledger's; access counts the denial (``access/ledger_hooks.py``).
- ``ledger_read_refused(user, view, service)``: someone signed in (``service``: the token's service account
  name, else None) was refused a read of the ledger (403) by a view that records reads
  (``audit/console/reads.py``). Sent after the view answered; access counts it as an invalid access
  attempt (PCI DSS v4 10.2.1.4), once per person and interval like refused reveals.

And to its own delivery code, since the ledger core never imports its tasks (``audit/tasks.py``
connects the receivers, which queue the work once the sender's transaction commits):

- ``witnessing_requested(checkpoint_id)``: a new checkpoint is to be submitted to the witnesses.
- ``export_requested(export_id)``: an export job was created and is to be written.
"""
from __future__ import annotations

from django.dispatch import Signal

integrity_failed = Signal()
reveal_refused = Signal()
ledger_read_refused = Signal()
subject_erased = Signal()
witnessing_requested = Signal()
export_requested = Signal()
