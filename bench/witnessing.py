#!/usr/bin/env python3
"""Witnessing latency (issue #14, section 4): record -> checkpoint cosigned by a quorum of two local witnesses.

    .venv/bin/python bench/witnessing.py            # ~2 min: SQLite in a temporary VAR_DIR
    .venv/bin/python bench/witnessing.py --quick    # ~40 s
    DATABASE_URL=postgres://root@127.0.0.1:5432/bench_witnessing .venv/bin/python bench/witnessing.py

Two honest witnesses (``python -m audit.witness serve``) run on 127.0.0.1; the log's
settings name both, quorum 2. Two measurements, each against a baseline from the same run:

A. **Schedule** (the target): a writer records entries at random times (Poisson, ``--rate``
   per second) while a scheduler signs a checkpoint every ``--interval`` seconds, as beat
   does, and submits it to the witnesses after commit (eager Celery: the witnessing task
   runs right after the checkpoint's commit, in the scheduler). Per entry: seconds from
   its commit to the first checkpoint covering it that carries a quorum of cosignatures
   (the moment the second cosignature was stored), against seconds to the first
   checkpoint covering it at all (the baseline: signing alone). Target: p99 <= interval + 2 s.
B. **Submission latency after commit**, ``--rounds`` times: record, integrate,
   ``checkpoint_create`` (timed: the baseline), then ``checkpoint_witness`` until the
   quorum is stored (timed). Printed as p50/p99 and as a ratio to the baseline.

With a PostgreSQL ``DATABASE_URL`` the database is used as it is (migrated, not emptied):
name one whose name contains "bench".
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WITNESS_NAMES = ("w1.bench.localhost", "w2.bench.localhost")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def start_witnesses(var: Path, log_vkey: str) -> tuple[list[subprocess.Popen[str]], list[str]]:
    processes, entries = [], []
    for name in WITNESS_NAMES:
        key = var / f"{name}.pem"
        vkey = subprocess.run([sys.executable, "-m", "audit.witness", "keygen", "--key", str(key), "--name", name],
                              cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
        proc = subprocess.Popen(
            [sys.executable, "-m", "audit.witness", "serve", "--listen", "127.0.0.1:0", "--name", name,
             "--key", str(key), "--state", str(var / f"{name}.state"), "--log", log_vkey],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            sys.exit(f"witness {name} did not start: {line!r}")
        processes.append(proc)
        entries.append(f"{line.removeprefix('listening on ')} {vkey}")
    return processes, entries


def prepare(var: Path) -> tuple[list[subprocess.Popen[str]], str]:
    """Generate the log key, start the witnesses, configure and set up Django; returns the processes and DB kind."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from audit.note import public_bytes, verifier_key

    origin = "bench.localhost/witnessing"
    key = Ed25519PrivateKey.generate()
    key_path = var / "log-key.pem"
    key_path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    processes, entries = start_witnesses(var, verifier_key(origin, public_bytes(key.public_key())))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings", VAR_DIR=str(var), LEDGER_ORIGIN=origin,
        LEDGER_SIGNING_KEY=str(key_path), LEDGER_WITNESSES=";".join(entries), LEDGER_WITNESS_QUORUM="2",
        LEDGER_INTEGRATE_ON_COMMIT="1", LOG_LEVEL=os.environ.get("LOG_LEVEL", "WARNING"),
    )
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    settings.DEBUG = False  # no query-logging cursor wrapper, as in production
    call_command("migrate", verbosity=0)
    return processes, settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]


def quorum_times() -> dict[int, tuple[int, float, float]]:
    """checkpoint id -> (tree size, created_at, time its quorum was stored) for checkpoints with a quorum."""
    from audit.models import Checkpoint

    out = {}
    for cp in Checkpoint.objects.prefetch_related("cosignatures").order_by("tree_size"):
        received = sorted(c.received_at.timestamp() for c in cp.cosignatures.all())
        if len(received) >= 2:
            out[cp.pk] = (cp.tree_size, cp.created_at.timestamp(), received[1])
    return out


def schedule(interval: float, seconds: float, rate: float) -> tuple[list[float], list[float], int]:
    """Measurement A: per-entry latency to a signed checkpoint (baseline) and to a quorum-cosigned one."""
    from django.db import connection, transaction

    from audit.ledger import Actor, Subject, record
    from audit.models import Checkpoint, Entry
    from audit.services.checkpoints import checkpoint_create

    committed: list[tuple[int, float]] = []  # (pending id, commit wall time)
    stop = threading.Event()

    def writer() -> None:
        rng = random.Random(14)
        try:
            while not stop.is_set():
                time.sleep(rng.expovariate(rate))
                with transaction.atomic():  # record() runs only inside a transaction
                    recorded = record(event_type="ledger.note_added", actor=Actor("user", "1"),
                                      subject=Subject("model", f"bench/{rng.randrange(50)}"), payload={"text": "bench"})
                committed.append((recorded.pending_id, time.time()))
        finally:
            connection.close()

    thread = threading.Thread(target=writer, name="writer")
    started = time.monotonic()
    thread.start()
    ticks = 0
    while time.monotonic() - started < seconds:
        next_tick = started + (ticks + 1) * interval
        time.sleep(max(0.0, next_tick - time.monotonic()))
        checkpoint_create(only_if_grown=True)  # the witnessing task runs eagerly right after its commit
        ticks += 1
    stop.set()
    thread.join()
    # Let the last entries be covered: one more checkpoint after the writer stopped.
    time.sleep(max(0.0, started + (ticks + 1) * interval - time.monotonic()))
    checkpoint_create(only_if_grown=True)

    seq_of = dict(Entry.objects.filter(pending_id__in=[p for p, _ in committed]).values_list("pending_id", "seq"))
    signed = list(Checkpoint.objects.order_by("tree_size").values_list("tree_size", "created_at"))
    cosigned = sorted(quorum_times().values())
    base, witnessed = [], []
    for pending_id, t0 in committed:
        seq = seq_of.get(pending_id)
        if seq is None:
            continue
        first = next((created for size, created in signed if size > seq), None)
        quorum = next((q for size, _, q in cosigned if size > seq), None)
        if first is None or quorum is None:
            continue
        base.append(first.timestamp() - t0)
        witnessed.append(quorum - t0)
    return base, witnessed, len(committed) - len(witnessed)


def rounds(n: int) -> tuple[list[float], list[float]]:
    """Measurement B: checkpoint_create alone (baseline) and the submission to both witnesses after commit."""
    from django.db import transaction
    from django.test import override_settings

    from audit.ledger import Actor, Subject, integrate, record
    from audit.services.checkpoints import checkpoint_create
    from audit.services.witnessing import checkpoint_witness

    base, submit = [], []
    # The baseline signs with no witness configured, so its after-commit hook queues nothing.
    no_witnesses = override_settings(LEDGER_WITNESSES=[])
    for i in range(n):
        with transaction.atomic():
            record(event_type="ledger.note_added", actor=Actor("user", "1"), subject=Subject("model", f"r/{i % 7}"),
                   payload={"text": "round"})
        integrate()
        with no_witnesses:
            t0 = time.perf_counter()
            checkpoint = checkpoint_create(only_if_grown=True)
            t1 = time.perf_counter()
        assert checkpoint is not None
        if len(checkpoint_witness(checkpoint_id=checkpoint.pk).cosigned) < 2 and checkpoint.cosignatures.count() < 2:
            raise SystemExit(f"round {i}: no quorum")
        t2 = time.perf_counter()
        base.append(t1 - t0)
        submit.append(t2 - t1)
    return base, submit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 s of schedule, 100 rounds")
    parser.add_argument("--interval", type=float, default=2.0, help="checkpoint interval in seconds (default 2)")
    parser.add_argument("--seconds", type=float, default=None, help="schedule duration (default 60, quick 20)")
    parser.add_argument("--rate", type=float, default=20.0, help="entries per second during the schedule")
    parser.add_argument("--rounds", type=int, default=None, help="submission rounds (default 300, quick 100)")
    args = parser.parse_args()
    seconds = args.seconds or (20.0 if args.quick else 60.0)
    n_rounds = args.rounds or (100 if args.quick else 300)

    with tempfile.TemporaryDirectory(prefix="bench-witnessing-") as tmp:
        var = Path(tmp)
        processes, engine = prepare(var)
        try:
            log(f"database {engine}; two local witnesses, quorum 2; interval {args.interval} s")
            # The rounds warm up both sides (connections, the witnesses' state) before the schedule.
            log(f"B. {n_rounds} rounds: record, checkpoint_create, submit to both witnesses")
            base_b, submit_b = rounds(n_rounds)
            log(f"A. schedule: {seconds:.0f} s, {args.rate:g} entries/s, checkpoint every {args.interval} s")
            base_a, witnessed_a, uncovered = schedule(args.interval, seconds, args.rate)
        finally:
            for proc in processes:
                proc.terminate()
                proc.wait(10)

    target = args.interval + 2.0
    p99 = pct(witnessed_a, 99)
    ok = p99 <= target
    print()
    print(f"A. record -> checkpoint cosigned by a quorum of 2 ({len(witnessed_a)} entries, {uncovered} not covered)")
    print(f"   baseline record -> signed checkpoint: p50 {pct(base_a, 50):.3f} s  p99 {pct(base_a, 99):.3f} s")
    print(f"   witnessed:                            p50 {pct(witnessed_a, 50):.3f} s  p99 {p99:.3f} s")
    print(f"   p99 added by witnessing {p99 - pct(base_a, 99):+.3f} s; target p99 <= interval + 2 s = {target:.1f} s:"
          f" {'PASS' if ok else 'FAIL'}")
    print(f"B. submission latency after commit ({len(submit_b)} rounds, two witnesses in parallel)")
    ms = {f"{label}{q}": pct(values, q) * 1000 for label, values in (("b", base_b), ("s", submit_b)) for q in (50, 99)}
    print(f"   baseline checkpoint_create:           p50 {ms['b50']:.1f} ms  p99 {ms['b99']:.1f} ms")
    print(f"   submission to quorum:                 p50 {ms['s50']:.1f} ms  p99 {ms['s99']:.1f} ms"
          f"  ({ms['s99'] / ms['b99']:.2f}x the baseline's p99)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
