"""Where each outbound stream stands in the ledger (``integrations.streams``)."""
from __future__ import annotations

from django.db import models


class StreamCursor(models.Model):
    """One consumer of the ledger in ``seq`` order: a SIEM sink, a webhook subscription, the notifier.

    ``seq`` is the last entry delivered (-1: none yet). ``lease_token``/``leased_until`` make one worker at a
    time the stream's deliverer without holding a database transaction across the network call
    (``integrations.streams.stream_deliver``). Rows are created on first use; deleting one restarts that stream
    from the beginning of the ledger (a replay).
    """

    name = models.CharField(max_length=200, unique=True)
    seq = models.BigIntegerField(default=-1)
    lease_token = models.CharField(max_length=32, blank=True, default="")
    leased_until = models.DateTimeField(null=True, blank=True)
    delivered_total = models.BigIntegerField(default=0)
    last_delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} @ {self.seq}"
