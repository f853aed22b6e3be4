"""Where each SIEM sink stands: cursor, lag behind the ledger head, last delivery, last error."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max

from audit.models import Entry
from integrations.models import StreamCursor
from integrations.siem.services import HEC_STREAM, SYSLOG_STREAM, configured_streams

SINK_LABELS = {SYSLOG_STREAM: "syslog (RFC 5424 over TLS)", HEC_STREAM: "Splunk HTTP Event Collector"}


@dataclass(frozen=True)
class SinkStatus:
    name: str
    label: str
    configured: bool
    seq: int
    lag: int
    delivered_total: int
    last_delivered_at: datetime | None
    last_error: str
    last_error_at: datetime | None


def ledger_head() -> int:
    return int(Entry.objects.aggregate(head=Max("seq"))["head"] if Entry.objects.exists() else -1)


def sink_statuses() -> list[SinkStatus]:
    """Every configured sink, and any sink that has a cursor but is no longer configured (its lag still shows)."""
    configured = configured_streams()
    cursors = {c.name: c for c in StreamCursor.objects.filter(name__in=list(SINK_LABELS))}
    head = ledger_head()
    rows = []
    for name in SINK_LABELS:
        cursor = cursors.get(name)
        if cursor is None and name not in configured:
            continue
        seq = cursor.seq if cursor else -1
        rows.append(SinkStatus(
            name=name, label=SINK_LABELS[name], configured=name in configured, seq=seq, lag=max(0, head - seq),
            delivered_total=cursor.delivered_total if cursor else 0,
            last_delivered_at=cursor.last_delivered_at if cursor else None,
            last_error=cursor.last_error if cursor else "", last_error_at=cursor.last_error_at if cursor else None))
    return rows
