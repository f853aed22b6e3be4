#!/usr/bin/env python
"""The ledger at scale: grow it to 10^7 entries and measure what size changes (issue #21 §4).

    DATABASE_URL=postgres://root@127.0.0.1:5432/bench_scale .venv/bin/python bench/scale.py            # 10^7
    DATABASE_URL=postgres://root@127.0.0.1:5432/bench_scale .venv/bin/python bench/scale.py --entries 1000000
    ... bench/scale.py --reuse-db --phases proofs,storage,keepup,export   # measure again on a grown ledger

The database is DROPPED and re-created unless ``--reuse-db`` (its name must contain "bench"). The ledger
grows the way a backlog would reach the sequencer: pending rows are written with ``COPY`` into the intake
queue in chunks of ``--chunk`` (10^6), and the real sequencer (``audit.ledger.integrate()``, batches of
``LEDGER_INTEGRATE_BATCH``) integrates each chunk. Timestamps advance by 1 ms per entry, so a time range
selects an exact number of entries (the export's memory comparison uses that).

Phases, each with its same-run baseline:

* ``grow``: COPY and integrate time per chunk (integration rate against the size the tree already has),
  wall time, the database's and the disk's growth. At every size in ``--steps`` (after VACUUM ANALYZE, as
  autovacuum would) the ``storage`` and ``proofs`` figures below are taken too, so growth can be projected.
* ``proofs``: 1,000 random inclusion and 1,000 consistency proofs (100 warm-up each, 20 checked with the
  RFC 9162 client algorithms), p50/p99, against a primary-key lookup of one entry. Target p99 <= 5 ms.
* ``storage``: bytes per entry of the ledger's tables and indexes (entries, Merkle nodes, subject heads)
  against a plain audit table of the same rows (the event columns, a bigint key, and the same query
  indexes on time, type, subject and actor), built with ``CREATE TABLE AS`` in the same run.
* ``keepup``: ``--keepup-rate`` (2,000) writes/s for ``--keepup-seconds`` (60), by ``--writers`` (4)
  processes each committing ``record()`` in its own ``transaction.atomic()``, paced, while a beat thread
  integrates every ``LEDGER_INTEGRATE_INTERVAL`` (1 s) and signs a checkpoint every 10 s, as Celery beat
  does. Keeping up means: the offered rate is achieved (>= 97 %), every integration round finishes within
  the interval (p99), and commit -> integrated p99 <= 2 intervals. Baseline: the offered rate.
* ``verify``: ``verify_ledger()`` over the whole database ledger (one process; and ``jobs=2`` when the
  verifier takes it), against SHA-256 over a 10^6-entry sample of the same bodies.
* ``export``: ``bench/export.py``'s export child over the whole ledger and over a tenth of it (peak RSS must
  stay flat), then ``verify.py`` (standalone) on the bundle; the bundle is deleted afterwards unless
  ``--keep``. Needs free disk of about 1.5 GB per 10^6 entries.

At the end the script projects 10^8 and 10^9 entries from what it measured: bytes per entry (linear),
integration rate (per chunk, against the tree size), proof p99 against the tree's height. Everything goes
to stdout and, with ``--json``, to a file.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import inspect
import json
import math
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import export as bench_export  # noqa: E402
from bench import ledger as bench_ledger  # noqa: E402  (sets DJANGO_SETTINGS_MODULE: overridden below)

os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
# Writers only append to the intake queue; the sequencer is this script's beat, as in production.
os.environ["LEDGER_INTEGRATE_ON_COMMIT"] = "0"

perf = time.perf_counter
pct = bench_ledger.pct
TEXT = bench_export.TEXT
SUBJECTS = 5000
COLUMNS = "timestamp, event_type, actor_type, actor_id, subject_type, subject_id, payload_json, idempotency_key"
LEDGER_TABLES = ("audit_entry", "audit_merklenode", "audit_subjecthead", "audit_pendingentry", "audit_ledgerhead",
                 "audit_checkpoint")
RESULTS: dict[str, Any] = {"steps": [], "chunks": []}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


# --------------------------------------------------------------------------------------
# growth


def copy_chunk(start: int, n: int) -> float:
    """COPY pending rows ``start .. start+n-1`` into the intake queue (what record() would have written)."""
    from django.db import connection

    from audit.canonical import canonical_json

    # The payloads are ASCII strings, whose canonical form is sorted compact JSON: checked, not assumed.
    assert canonical_json({"text": TEXT, "reference": "GOV-7"}) == f'{{"reference":"GOV-7","text":"{TEXT}"}}'
    stamp = bench_export.stamp
    t0 = perf()
    connection.ensure_connection()
    raw = connection.connection
    with raw.cursor() as cur, cur.copy(f"COPY audit_pendingentry ({COLUMNS}) FROM STDIN") as copy:
        for i in range(start, start + n):
            copy.write_row((stamp(i), "ledger.note_added", "user", str(1000 + i % 50), "model_version",
                            f"fraud-detector/{i % SUBJECTS}", f'{{"reference":"GOV-{i}","text":"{TEXT}"}}', None))
    raw.commit()
    return perf() - t0


def ledger_size() -> int:
    from audit.selectors import ledger_size as size

    return size()


def grow(target: int, chunk: int, steps: list[int], args: argparse.Namespace) -> None:
    from audit import ledger

    have = ledger_size()
    disk0 = shutil.disk_usage(args.workdir).used
    t_start = perf()
    log(f"grow: {have:,} -> {target:,} entries, chunks of {chunk:,}; {load()}")
    for step in sorted({s for s in steps if s > have}):
        while have < step:
            n = min(chunk, step - have)
            t_copy = copy_chunk(have, n)
            t0 = perf()
            done = ledger.integrate()
            t_int = perf() - t0
            assert done == n, (done, n)
            row = {"from": have, "to": have + n, "copy_s": t_copy, "integrate_s": t_int,
                   "integrate_rate": n / t_int, "load": os.getloadavg()[0]}
            RESULTS["chunks"].append(row)
            have += n
            log(f"    {have:>12,}: COPY {t_copy:6.1f}s, integrate {t_int:6.1f}s ({n / t_int:8,.0f} entries/s); "
                f"{load()}")
        t_vac = bench_ledger.vacuum_analyze()
        log(f"    size {have:,}: VACUUM (ANALYZE) {t_vac:.1f}s (not counted)")
        RESULTS["steps"].append({"size": have, "vacuum_s": t_vac, "storage": storage(),
                                 "proofs": proofs(have, queries=args.queries)})
    wall = perf() - t_start
    disk = shutil.disk_usage(args.workdir).used - disk0
    RESULTS["grow"] = {"seconds": wall, "disk_bytes": disk, "entries": have}
    log(f"grow: done in {wall:,.0f}s, disk +{disk / 1e9:.2f} GB")


# --------------------------------------------------------------------------------------
# storage


def relation_sizes(tables: tuple[str, ...]) -> dict[str, dict[str, int]]:
    from django.db import connection

    out = {}
    with connection.cursor() as cur:
        for t in tables:
            cur.execute("SELECT pg_table_size(%s), pg_indexes_size(%s)", [t, t])
            heap, idx = cur.fetchone()
            out[t] = {"table": heap, "indexes": idx}
    return out


def storage() -> dict[str, Any]:
    from django.db import connection

    size = ledger_size()
    sizes = relation_sizes(LEDGER_TABLES)
    total = sum(v["table"] + v["indexes"] for v in sizes.values())
    with connection.cursor() as cur:
        cur.execute("SELECT pg_database_size(current_database())")
        db = cur.fetchone()[0]
    per = {t: (v["table"] + v["indexes"]) / max(1, size) for t, v in sizes.items()}
    log(f"    storage at {size:,}: ledger tables {total / 1e9:.2f} GB = {total / max(1, size):.0f} B/entry "
        f"(entries {per['audit_entry']:.0f}, Merkle nodes {per['audit_merklenode']:.0f}, "
        f"subject heads {per['audit_subjecthead']:.1f}); database {db / 1e9:.2f} GB")
    return {"entries": size, "tables": sizes, "ledger_bytes": total, "bytes_per_entry": total / max(1, size),
            "database_bytes": db}


def storage_vs_plain() -> dict[str, Any]:
    """The same rows in a plain audit table: the event columns, a key and the same query indexes."""
    from django.db import connection

    size = ledger_size()
    t0 = perf()
    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_plain_log")
        cur.execute("CREATE TABLE bench_plain_log AS SELECT seq AS id, timestamp, event_type, actor_type, actor_id, "
                    "subject_type, subject_id, payload_json FROM audit_entry")
        cur.execute("ALTER TABLE bench_plain_log ADD PRIMARY KEY (id)")
        cur.execute("CREATE INDEX ON bench_plain_log (timestamp)")
        cur.execute("CREATE INDEX ON bench_plain_log (event_type)")
        cur.execute("CREATE INDEX ON bench_plain_log (subject_type, subject_id, id)")
        cur.execute("CREATE INDEX ON bench_plain_log (actor_type, actor_id, id)")
        cur.execute("VACUUM (ANALYZE) bench_plain_log")
    built = perf() - t0
    plain = relation_sizes(("bench_plain_log",))["bench_plain_log"]
    with connection.cursor() as cur:
        cur.execute("SELECT pg_total_relation_size('bench_plain_log_pkey'), pg_table_size('bench_plain_log')")
        pk, heap = cur.fetchone()
        cur.execute("DROP TABLE bench_plain_log")
    ledger = storage()
    plain_total = plain["table"] + plain["indexes"]
    out = {"entries": size, "plain": plain, "plain_bytes_per_entry": plain_total / size,
           "plain_heap_pk_bytes_per_entry": (heap + pk) / size, "ledger_bytes_per_entry": ledger["bytes_per_entry"],
           "ratio": ledger["ledger_bytes"] / plain_total, "build_s": built, "ledger": ledger}
    log(f"storage vs plain table at {size:,}: ledger {ledger['bytes_per_entry']:.0f} B/entry, plain table with the "
        f"same query indexes {plain_total / size:.0f} B/entry (heap + key only {(heap + pk) / size:.0f}): "
        f"{out['ratio']:.2f}x")
    return out


# --------------------------------------------------------------------------------------
# proofs


def proofs(size: int, queries: int = 1000) -> dict[str, Any]:
    from audit.merkle import verify_consistency, verify_inclusion
    from audit.models import Entry
    from audit.selectors import consistency_proof, inclusion_proof

    rng = random.Random(size)
    for _ in range(20):  # correctness first, with the client algorithms
        seq = rng.randrange(size)
        tree = rng.randrange(seq + 1, size + 1)
        p = inclusion_proof(seq=seq, tree_size=tree)
        assert verify_inclusion(seq, tree, p.leaf_hash, p.path, p.root)
        old = rng.randrange(1, size + 1)
        new = rng.randrange(old, size + 1)
        c = consistency_proof(old_size=old, new_size=new)
        assert verify_consistency(old, new, c.old_root, c.new_root, c.path)

    def inclusion() -> None:
        seq = rng.randrange(size)
        inclusion_proof(seq=seq, tree_size=rng.randrange(seq + 1, size + 1))

    def consistency() -> None:
        old = rng.randrange(1, size + 1)
        consistency_proof(old_size=old, new_size=rng.randrange(old, size + 1))

    def lookup() -> None:
        Entry.objects.get(seq=rng.randrange(size))

    def timed(fn: Any, n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = perf()
            fn()
            out.append((perf() - t0) * 1000)
        return out

    for fn in (lookup, inclusion, consistency):
        timed(fn, 100)
    # interleaved in blocks, so a burst of other work hits all three alike
    lk: list[float] = []
    inc: list[float] = []
    con: list[float] = []
    for _ in range(queries // 100):
        lk += timed(lookup, 100)
        inc += timed(inclusion, 100)
        con += timed(consistency, 100)
    out = {"size": size, "height": math.ceil(math.log2(size)), "load": os.getloadavg()[0]}
    for name, values in (("lookup", lk), ("inclusion", inc), ("consistency", con)):
        out[name] = {"p50": statistics.median(values), "p99": pct(values, 99), "max": max(values)}
    ok = out["inclusion"]["p99"] <= 5 and out["consistency"]["p99"] <= 5
    log(f"    proofs at {size:,} (height {out['height']}): inclusion p50/p99 {out['inclusion']['p50']:.2f}/"
        f"{out['inclusion']['p99']:.2f} ms, consistency {out['consistency']['p50']:.2f}/"
        f"{out['consistency']['p99']:.2f} ms; baseline PK lookup {out['lookup']['p50']:.2f}/"
        f"{out['lookup']['p99']:.2f} ms; target p99 <= 5 ms {'PASS' if ok else 'FAIL'}; {load()}")
    out["passed"] = ok
    return out


# --------------------------------------------------------------------------------------
# keeping up with a sustained write rate


def _writer(w: int, rate: float, seconds: float, start_at: float, base: int, queue: Any) -> None:
    import django

    django.setup()
    from django.db import connection, transaction

    from audit import ledger

    every = 1 / rate
    commits: list[tuple[float, int]] = []
    late = 0.0
    k = 0
    while True:
        due = start_at + k * every
        if due >= start_at + seconds:
            break
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        else:
            late = max(late, -delay)
        i = base + w * 10_000_000 + k
        with transaction.atomic():
            r = ledger.record(event_type="ledger.note_added", actor=ledger.Actor("user", str(1000 + w)),
                              subject=ledger.Subject("model_version", f"fraud-detector/{i % SUBJECTS}"),
                              payload={"text": TEXT, "reference": f"GOV-{i}"})
        commits.append((time.time(), r.pending_id))
        k += 1
    connection.close()
    queue.put((w, commits, late))


def keepup(args: argparse.Namespace) -> dict[str, Any]:
    from django.conf import settings
    from django.db import connection

    from audit import ledger
    from audit.models import Entry
    from audit.services.checkpoints import checkpoint_create

    rate, seconds, writers = args.keepup_rate, args.keepup_seconds, args.writers
    interval = float(settings.LEDGER_INTEGRATE_INTERVAL)
    size0 = ledger_size()
    log(f"keep-up at {size0:,} entries: {rate:,.0f} writes/s for {seconds:.0f}s by {writers} processes; "
        f"integrate every {interval:g}s, checkpoint every 10s; {load()}")
    checkpoint_create(only_if_grown=True)
    connection.close()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    start_at = time.time() + 3.0
    procs = [ctx.Process(target=_writer, args=(w, rate / writers, seconds, start_at, 90_000_000, queue))
             for w in range(writers)]
    for p in procs:
        p.start()
    stop = threading.Event()
    rounds: list[tuple[float, float, int, int]] = []  # (end time, duration, integrated, tree size after)
    backlog: list[int] = []
    errors: list[BaseException] = []

    def beat() -> None:
        from audit.models import PendingEntry

        try:
            k = 0
            last_checkpoint = time.time()
            while not stop.is_set():
                k += 1
                delay = start_at + k * interval - time.time()
                if delay > 0 and stop.wait(delay):
                    break
                backlog.append(PendingEntry.objects.count())
                t0 = time.time()
                n = ledger.integrate()
                t1 = time.time()
                rounds.append((t1, t1 - t0, n, ledger_size()))
                if t1 - last_checkpoint >= 10:
                    checkpoint_create(only_if_grown=True)
                    last_checkpoint = time.time()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=beat)
    thread.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    end = max(t for _, commits, _ in results for t, _ in commits)
    while time.time() < end + 3 * interval and not errors:
        if rounds and rounds[-1][0] > end + interval and rounds[-1][2] == 0:
            break
        time.sleep(0.1)
    stop.set()
    thread.join()
    if errors:
        raise errors[0]
    commits = sorted(c for _, cs, _ in results for c in cs)
    achieved = len(commits) / seconds
    ids = [p for _, p in commits]
    seq_of: dict[int, int] = {}
    for i in range(0, len(ids), 50_000):  # one parameter per id, and PostgreSQL binds at most 65,535
        seq_of.update(Entry.objects.filter(pending_id__in=ids[i:i + 50_000]).values_list("pending_id", "seq"))
    assert len(seq_of) == len(commits), "an entry a writer was given is not in the chain"
    lat = []
    for t, pid in commits:
        seq = seq_of[pid]
        first = next((rt for rt, _, _, size in rounds if size > seq and rt >= t), None)
        lat.append(float("inf") if first is None else first - t)
    durations = [d for _, d, n, _ in rounds if n]
    out = {"size_before": size0, "offered_rate": rate, "achieved_rate": achieved, "writers": writers,
           "seconds": seconds, "interval": interval, "entries": len(commits),
           "latency_s": {"p50": statistics.median(lat), "p99": pct(lat, 99), "max": max(lat)},
           "round_s": {"p50": statistics.median(durations), "p99": pct(durations, 99), "max": max(durations)},
           "backlog": {"max": max(backlog), "p50": statistics.median(backlog)},
           "writer_late_max_s": max(late for _, _, late in results), "load": os.getloadavg()[0]}
    out["passed"] = (achieved >= 0.97 * rate and out["round_s"]["p99"] <= interval
                     and out["latency_s"]["p99"] <= 2 * interval)
    log(f"    {len(commits):,} entries, {achieved:,.0f}/s achieved of {rate:,.0f} offered; integration rounds p50/p99 "
        f"{out['round_s']['p50'] * 1000:.0f}/{out['round_s']['p99'] * 1000:.0f} ms (max "
        f"{out['round_s']['max'] * 1000:.0f}); backlog max {out['backlog']['max']:,}; commit -> integrated p50/p99 "
        f"{out['latency_s']['p50']:.2f}/{out['latency_s']['p99']:.2f}s: {'PASS' if out['passed'] else 'FAIL'}; "
        f"{load()}")
    return out


# --------------------------------------------------------------------------------------
# verification in the database, export and verify.py


def verify_db() -> dict[str, Any]:
    from django.db import connection

    from audit.canonical import body_bytes
    from audit.verification import verify_ledger

    size = ledger_size()
    out: dict[str, Any] = {"entries": size}
    variants: list[dict[str, Any]] = [{}]
    if "jobs" in inspect.signature(verify_ledger).parameters:
        variants.append({"jobs": 2})
    for kwargs in variants:
        gc.collect()
        cpu0 = time.process_time()
        t0 = perf()
        result = verify_ledger(**kwargs)
        seconds = perf() - t0
        assert result.ok, result.detail
        key = f"jobs{kwargs.get('jobs', 1)}"
        out[key] = {"seconds": seconds, "rate": size / seconds, "cpu_s": time.process_time() - cpu0}
        log(f"    verify_ledger({', '.join(f'{k}={v}' for k, v in kwargs.items())}) on {size:,}: {seconds:.1f}s "
            f"({size / seconds:,.0f} entries/s); {load()}")
    sample = min(size, 1_000_000)
    bodies = []
    with connection.cursor() as cur:
        cur.execute("SELECT seq, timestamp, event_type, actor_type, actor_id, subject_type, subject_id, "
                    "payload_json, prev_hash, subject_prev FROM audit_entry WHERE seq < %s ORDER BY seq", [sample])
        for seq, ts, et, at, aid, st, sid, pj, ph, sp in cur:
            bodies.append(body_bytes(seq=seq, timestamp=ts, event_type=et, actor_type=at, actor_id=aid,
                                     subject_type=st, subject_id=sid, payload_json=pj, prev_hash=ph,
                                     subject_prev=sp))
    sha = hashlib.sha256
    t0 = perf()
    for b in bodies:
        sha(b"\x00" + b).digest()
    out["sha256_rate"] = len(bodies) / (perf() - t0)
    log(f"    baseline: SHA-256 of the leaf bodies in memory {out['sha256_rate']:,.0f}/s; verify_ledger at "
        f"{out['jobs1']['rate'] / out['sha256_rate']:.3f}x of it")
    return out


def export_and_verify(args: argparse.Namespace) -> dict[str, Any]:
    size = ledger_size()
    work = Path(args.workdir)
    stamp = bench_export.stamp
    log(f"export of a tenth ({size // 10:,}) for the memory comparison; {load()}")
    small = bench_export.run_child("--child-export", str(work / "small.zip"), stamp(0), stamp(size // 10 - 1))
    (work / "small.zip").unlink(missing_ok=True)
    log(f"    {small['entries']:,} in {small['seconds']:.1f}s, peak RSS {small['peak_rss_mb']:.0f} MB")
    log(f"export of the whole ledger ({size:,}); {load()}")
    bundle = work / "bundle.zip"
    full = bench_export.run_child("--child-export", str(bundle), "", "")
    rate = full["entries"] / full["seconds"]
    log(f"    {full['entries']:,} in {full['seconds']:.1f}s ({rate:,.0f} entries/s), {full['bytes'] / 1e9:.2f} GB, "
        f"peak RSS {full['peak_rss_mb']:.0f} MB; {load()}")
    verified = bench_export.run_child("--child-verify", str(bundle), "")
    vrate = verified["entries"] / verified["seconds"]
    log(f"    verify.py: {verified['entries']:,} in {verified['seconds']:.1f}s ({vrate:,.0f} entries/s, "
        f"{verified['cpu_seconds']:.0f}s CPU), ok={verified['ok']}, peak RSS {verified['peak_rss_mb']:.0f} MB; "
        f"{load()}")
    t_sha = bench_export.baseline_sha256(bundle)
    log(f"    baseline: every member of the bundle read and hashed with SHA-256 in {t_sha:.1f}s")
    if not args.keep:
        bundle.unlink()
    flat = full["peak_rss_mb"] <= small["peak_rss_mb"] * 1.25 + 32
    return {"small": small, "full": full, "export_rate": rate, "verify": verified, "verify_rate": vrate,
            "sha256_seconds": t_sha, "memory_flat": flat, "bundle_bytes": full["bytes"]}


# --------------------------------------------------------------------------------------
# projection


def project() -> dict[str, Any]:
    """10^8 and 10^9 from the measured growth: bytes per entry, integration rate per decade, proof cost per level.

    Deliberately simple and stated: storage grows linearly (every table is per entry); the integration rate
    changes by the factor measured over the last decade of growth, again per decade; a proof's p99 grows by
    the per-level cost measured between the smallest and the largest size, which holds only while the upper
    levels of the tree and the index pages stay in memory (see docs/benchmarks.md for the cliff after that).
    """
    steps = sorted(RESULTS["steps"], key=lambda s: s["size"])
    chunks = RESULTS["chunks"]
    if not steps or not chunks:
        return {}
    last = steps[-1]
    size = last["size"]
    bpe = last["storage"]["bytes_per_entry"]

    def rate_near(n: float) -> float:
        near = [c for c in chunks if n / 3 <= c["to"] <= n]
        near = near or chunks[-1:]
        return sum(c["to"] - c["from"] for c in near) / sum(c["integrate_s"] for c in near)

    rate_end = rate_near(size)
    rate_decade_before = rate_near(size / 10) if size / 10 >= chunks[0]["to"] else None
    per_decade = min(1.0, rate_end / rate_decade_before) if rate_decade_before else 1.0
    first = steps[0]["proofs"]
    worst = last["proofs"]

    def p99(p: dict[str, Any]) -> float:
        return float(max(p["inclusion"]["p99"], p["consistency"]["p99"]))

    levels = worst["height"] - first["height"]
    per_level = max(0.0, (p99(worst) - p99(first)) / levels) if levels else 0.0
    out: dict[str, Any] = {"bytes_per_entry": bpe, "integrate_rate_at_end": rate_end,
                           "integrate_rate_factor_per_decade": per_decade, "proof_p99_ms_per_level": per_level,
                           "targets": {}}
    seconds, rate, n = 0.0, rate_end, size
    for decade in (1, 2):
        target = size * 10**decade
        next_rate = rate * per_decade
        seconds += (target - n) / math.sqrt(rate * next_rate)  # geometric mean across the decade
        rate, n = next_rate, target
        height = math.ceil(math.log2(target))
        projected = p99(worst) + per_level * (height - worst["height"])
        out["targets"][str(target)] = {"ledger_bytes": bpe * target, "integrate_seconds_from_here": seconds,
                                       "integrate_rate": rate, "height": height, "proof_p99_ms": projected}
        log(f"projection to {target:.0e}: {bpe * target / 1e9:,.0f} GB of ledger tables; integrating the "
            f"{target - size:,.0f} more entries {seconds / 3600:,.1f} h at {rate:,.0f}/s by then "
            f"(x{per_decade:.2f} per decade, measured); proof p99 ~{projected:.2f} ms at height {height} "
            f"({per_level:.3f} ms per level) while the working set stays in memory")
    return out


# --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=10_000_000)
    parser.add_argument("--steps", default="100000,1000000,3000000",
                        help="sizes at which storage and proofs are measured on the way (the final size always)")
    parser.add_argument("--chunk", type=int, default=1_000_000, help="pending rows per COPY + integrate round")
    parser.add_argument("--phases", default="grow,storage,keepup,verify,export")
    parser.add_argument("--queries", type=int, default=1000, help="proofs of each kind per size")
    parser.add_argument("--keepup-rate", type=float, default=2000.0)
    parser.add_argument("--keepup-seconds", type=float, default=60.0)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--reuse-db", action="store_true", help="keep the database as it is (grow only the rest)")
    parser.add_argument("--force", action="store_true", help="allow a database whose name lacks 'bench'")
    parser.add_argument("--workdir", help="VAR_DIR (signing key) and bundles; default a directory under /var/tmp")
    parser.add_argument("--keep", action="store_true", help="keep the exported bundle")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--resume-json", type=Path,
                        help="with --reuse-db: the JSON of the run that grew this ledger (its chunks and steps are "
                        "kept; a size measured again replaces its step)")
    args = parser.parse_args()
    phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database, e.g. postgres://root@127.0.0.1:5432/bench_scale")
    name, info = bench_ledger.conninfo_from_url(url)
    if "bench" not in name and not args.force:
        sys.exit(f"refusing to use database {name!r}: its name does not contain 'bench' (use --force)")
    args.workdir = args.workdir or str(Path("/var/tmp") / f"bench-scale-{name}")
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    os.environ["VAR_DIR"] = str(Path(args.workdir) / "var")  # the dev signing key, shared with the children
    if not args.reuse_db:
        log(f"(re)creating database {name}")
        bench_ledger.recreate_database(name, info)
    bench_export.setup_django()
    import logging

    logging.getLogger("audit.signing").setLevel(logging.ERROR)
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    RESULTS["machine"] = {"cpus": os.cpu_count(), "load_start": os.getloadavg(),
                          "disk_free_start": shutil.disk_usage(args.workdir).free}
    RESULTS["args"] = {k: str(v) for k, v in vars(args).items()}
    if args.resume_json:
        earlier = json.loads(args.resume_json.read_text())
        RESULTS["chunks"] = earlier.get("chunks", [])
        RESULTS["steps"] = earlier.get("steps", [])
        RESULTS["earlier_grow"] = earlier.get("grow")
    started = perf()
    steps = [int(s) for s in args.steps.split(",") if s.strip()]
    if "grow" in phases:
        grow(args.entries, args.chunk, [s for s in steps if s < args.entries] + [args.entries], args)
    elif "proofs" in phases:
        size = ledger_size()
        RESULTS["steps"] = [s for s in RESULTS["steps"] if s["size"] != size]
        RESULTS["steps"].append({"size": size, "storage": storage(), "proofs": proofs(size, queries=args.queries)})
    if "storage" in phases:
        RESULTS["storage_vs_plain"] = storage_vs_plain()
    if "verify" in phases:
        RESULTS["verify_db"] = verify_db()
    if "export" in phases:
        from audit.services.checkpoints import checkpoint_create

        checkpoint_create(only_if_grown=True)  # the bundle's checkpoint covers the whole ledger
        RESULTS["export"] = export_and_verify(args)
    if "keepup" in phases:  # last: it adds entries that the figures above would otherwise count
        RESULTS["keepup"] = keepup(args)
    RESULTS["projection"] = project()
    RESULTS["total_seconds"] = perf() - started
    RESULTS["machine"]["load_end"] = os.getloadavg()
    RESULTS["machine"]["disk_free_end"] = shutil.disk_usage(args.workdir).free
    passed = all(s["proofs"]["passed"] for s in RESULTS["steps"])
    if "keepup" in RESULTS:
        passed = passed and RESULTS["keepup"]["passed"]
    if "export" in RESULTS:
        passed = passed and RESULTS["export"]["memory_flat"] and RESULTS["export"]["verify"]["ok"]
    log(f"total {RESULTS['total_seconds']:,.0f}s; {'PASS' if passed else 'FAIL'}")
    if args.json:
        args.json.write_text(json.dumps(RESULTS, indent=2, default=str))
        log(f"wrote {args.json}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
