"""Deliver the ledger to each configured SIEM sink through the one outbound write path (integrations.streams).

Sinks are settings (config/settings.py, ``SIEM_*``; docs/siem.md): ``siem.syslog`` and ``siem.hec``, each its
own stream with its own cursor. A sink's configuration is therefore not a ledger entry (it changes with a
deployment, which is on the deployment's own record, docs/siem.md); delivering moves only the cursor.

A SIEM outage never blocks the product: delivery runs in Celery (or the embedded scheduler), outside any
request and any database transaction; entries wait in the ledger and the lag grows (console, metrics).
"""
from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings

from audit.models import Entry
from integrations.siem import hec, syslog
from integrations.streams import Delivered, stream_deliver

SYSLOG_STREAM = "siem.syslog"
HEC_STREAM = "siem.hec"

# One connection per process and configuration (a changed setting means a new object; tests swap settings).
_syslog_connections: dict[syslog.SyslogConfig, syslog.SyslogConnection] = {}
_hec_clients: dict[hec.HecConfig, hec.HecClient] = {}


def syslog_config() -> syslog.SyslogConfig | None:
    url = settings.SIEM_SYSLOG_URL
    if not url:
        return None
    return syslog.SyslogConfig.from_url(
        url, ca_file=settings.SIEM_SYSLOG_CA_FILE, server_name=settings.SIEM_SYSLOG_SERVER_NAME,
        cert_file=settings.SIEM_SYSLOG_CERT_FILE, key_file=settings.SIEM_SYSLOG_KEY_FILE,
        hostname=settings.SIEM_SYSLOG_HOSTNAME, app_name=settings.SIEM_SYSLOG_APP_NAME,
        timeout=settings.SIEM_TIMEOUT, resend=settings.SIEM_SYSLOG_RESEND)


def hec_config() -> hec.HecConfig | None:
    if not settings.SIEM_HEC_URL:
        return None
    return hec.HecConfig(url=settings.SIEM_HEC_URL, token=settings.SIEM_HEC_TOKEN or "",
                         ca_file=settings.SIEM_HEC_CA_FILE, hostname=settings.SIEM_SYSLOG_HOSTNAME,
                         sourcetype=settings.SIEM_HEC_SOURCETYPE, index=settings.SIEM_HEC_INDEX,
                         timeout=settings.SIEM_TIMEOUT)


def configured_streams() -> list[str]:
    return [name for name, on in ((SYSLOG_STREAM, bool(settings.SIEM_SYSLOG_URL)),
                                  (HEC_STREAM, bool(settings.SIEM_HEC_URL))) if on]


def syslog_deliver(*, batch_size: int | None = None) -> Delivered | None:
    """One round of the syslog sink (None when not configured). Raises what the connection raised (the error
    is kept on the cursor and the same entries go again next time, on a new connection).

    On a new connection the batch is preceded by the last ``resend`` entries up to the cursor (syslog.py's
    docstring: what the daemon may have lost); they count in ``delivered_total`` again."""
    config = syslog_config()
    if config is None:
        return None
    conn = _syslog_connections.get(config)
    if conn is None:
        _syslog_connections.clear()
        conn = _syslog_connections[config] = syslog.SyslogConnection(config)
    size = batch_size or settings.SIEM_SYSLOG_BATCH

    def entries(after: int, limit: int) -> Sequence[Entry]:
        # Runs under the stream's lease, so the resent entries and the new ones leave in one ordered run.
        new = list(Entry.objects.filter(seq__gt=after).order_by("seq")[:limit])
        if conn.usable() or config.resend <= 0 or after < 0:
            return new
        again = list(Entry.objects.filter(seq__lte=after).order_by("-seq")[:config.resend])[::-1]
        return again + new

    def deliver(batch: Sequence[Entry]) -> int:
        conn.send(syslog.encode_batch(batch, config))
        return len(batch)

    return stream_deliver(name=SYSLOG_STREAM, deliver=deliver, batch_size=size, entries=entries)


def hec_deliver(*, batch_size: int | None = None) -> Delivered | None:
    """One round of the HEC sink (None when not configured); raises ``hec.HecError`` or the network error."""
    config = hec_config()
    if config is None:
        return None
    client = _hec_clients.get(config)
    if client is None:
        _hec_clients.clear()
        client = _hec_clients[config] = hec.HecClient(config)

    def deliver(batch: Sequence[Entry]) -> int:
        return client.post(hec.encode_batch(batch, config), len(batch))

    return stream_deliver(name=HEC_STREAM, deliver=deliver, batch_size=batch_size or settings.SIEM_HEC_BATCH)


def forget_connections() -> None:
    """Close every kept connection (as a process exit would): the next syslog round resends its window."""
    for conn in _syslog_connections.values():
        conn.close()
    for client in _hec_clients.values():
        client.close()
    _syslog_connections.clear()
    _hec_clients.clear()
