#!/usr/bin/env python
"""SIEM stream throughput: ledger entries per second delivered as RFC 5424 over TLS to a local receiver.

    .venv/bin/python bench/siem.py [--entries 50000] [--batch 1000] [--json FILE]

A fresh SQLite ledger in a temporary directory gets ``--entries`` entries (notes with a request id and a
~150-byte payload). The receiver is a separate process on 127.0.0.1: a TLS server (certificate from a CA made
for the run) that reads and counts bytes, and reports the count when the connection closes.

Measured: ``integrations.siem.services.syslog_deliver`` from an empty cursor until caught up (per batch: one
query, the OCSF mapping, the RFC 5424 framing, one TLS write, the cursor's claim and advance), timed until the
receiver has read the last byte. Baseline, same run, same receiver: writing the very same bytes (encoded
before the clock starts) on one TLS connection. Target: at least 10,000 entries/s (issue #19); the ratio to the
baseline says what share of the raw TLS write capacity the stream's work leaves.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_RATE = 10_000.0
perf = time.perf_counter


def receiver(cert: str, key: str, ready: Any, counts: Any) -> None:
    """Accept connections one at a time; read each to EOF; report its byte count."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = socket.create_server(("127.0.0.1", 0))
    ready.put(server.getsockname()[1])
    while True:
        conn, _ = server.accept()
        with context.wrap_socket(conn, server_side=True) as tls:
            total = 0
            while chunk := tls.recv(1 << 20):
                total += len(chunk)
        counts.put(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-siem-"))
    from tests.integrations.siem_receivers import make_pki
    pki = make_pki(tmp / "pki", server_name="siem.bench")
    ctx = multiprocessing.get_context("fork")
    ready, counts = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=receiver, args=(str(pki.cert_file), str(pki.key_file), ready, counts), daemon=True)
    proc.start()
    port = ready.get(timeout=10)

    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "0", "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
        "SECRET_KEY": "bench-" + "x" * 60, "LEDGER_INTEGRATE_ON_COMMIT": "0", "ALLOWED_HOSTS": "localhost",
        "MLFLOW_WEBHOOK_SECRET": "bench-webhook-secret", "LEDGER_PII_KEK": "",
        "SIEM_SYSLOG_URL": f"tls://127.0.0.1:{port}", "SIEM_SYSLOG_CA_FILE": str(pki.ca_file),
        "SIEM_SYSLOG_SERVER_NAME": "siem.bench", "SIEM_SYSLOG_BATCH": str(args.batch), "SIEM_SYSLOG_RESEND": "0",
        "DEBUG_ALLOW_DEV_KEYS": "1",
    })
    import django
    os.environ["DEBUG"] = "1"  # the dev signing key and secrets are refused with DEBUG off; no query logging below
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction

    settings.DEBUG = False
    call_command("migrate", verbosity=0)
    from audit.ledger import Actor, Event, Subject, integrate, record_many
    from audit.models import Entry
    from integrations.siem import services, syslog

    print(f"recording {args.entries} entries ...", flush=True)
    for start in range(0, args.entries, 5000):
        with transaction.atomic():
            record_many([Event("ledger.note_added", Actor.system("bench"), Subject("registered_model", f"m{i % 50}"),
                               {"text": f"note {i}: " + "lorem ipsum dolor sit amet " * 5, "reference": f"B-{i}"},
                               request_id=f"{i:032x}")
                         for i in range(start, min(args.entries, start + 5000))])
        integrate()
    assert Entry.objects.count() == args.entries
    connection.close()

    # Baseline: the same bytes, encoded before the clock starts, on one TLS connection.
    config = services.syslog_config()
    assert config is not None
    payload = b"".join(syslog.encode_batch(list(Entry.objects.order_by("seq")[s:s + args.batch]), config)
                       for s in range(0, args.entries, args.batch))
    conn = syslog.SyslogConnection(config)
    t0 = perf()
    conn.connect()
    for s in range(0, len(payload), 1 << 20):
        conn.send(payload[s:s + (1 << 20)])
    conn.close()
    got = counts.get(timeout=120)
    baseline_seconds = perf() - t0
    assert got == len(payload), (got, len(payload))

    # The stream: query, map, frame, write, advance, batch after batch until caught up.
    t0 = perf()
    delivered = 0
    while (result := services.syslog_deliver()) is not None and result.count:
        delivered += result.count
    services.forget_connections()
    got = counts.get(timeout=120)
    stream_seconds = perf() - t0
    assert delivered == args.entries and got == len(payload), (delivered, got, len(payload))
    proc.terminate()

    rate = args.entries / stream_seconds
    baseline = args.entries / baseline_seconds
    ok = rate >= TARGET_RATE
    print(f"entries: {args.entries}, bytes: {len(payload)} ({len(payload) / args.entries:.0f} per message), "
          f"batch: {args.batch}")
    print(f"baseline (raw TLS write of the same bytes): {baseline:,.0f} entries/s ({baseline_seconds:.2f} s)")
    print(f"SIEM stream (syslog_deliver):               {rate:,.0f} entries/s ({stream_seconds:.2f} s)")
    print(f"ratio stream/baseline: {rate / baseline:.3f}; target >= {TARGET_RATE:,.0f} entries/s: "
          f"{'PASS' if ok else 'FAIL'}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "entries": args.entries, "bytes": len(payload), "batch": args.batch, "baseline_rate": baseline,
            "stream_rate": rate, "ratio": rate / baseline, "target": TARGET_RATE, "pass": ok}, indent=1))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
