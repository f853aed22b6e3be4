#!/usr/bin/env python
"""Benchmark of regulator exports: writing a bundle and verifying it with verify.py.

    .venv/bin/python bench/export.py [--quick] [--entries N] [--workdir DIR] [--keep] [--verify-jobs auto|1|2]
    .venv/bin/python bench/export.py --bundle DIR/bundle.zip   # only the verify figures, on a kept bundle
    DATABASE_URL=postgres://root@127.0.0.1:5432/bench_export .venv/bin/python bench/export.py

SQLite by default (a fresh database in a temporary directory); with DATABASE_URL,
PostgreSQL: that database is DROPPED and re-created (its name must contain "bench",
or pass --force). The ledger is generated fast: pending rows inserted in bulk, then
the real sequencer, ``audit.ledger.integrate()``.

Figures, each against a baseline measured in the same run:

* export: ``export_audit`` of the whole ledger as a bundle (``export_create`` +
  ``export_run``), in a child process, against writing the same member bytes into a
  zip with the same compression (read from already extracted files). Target
  >= 50,000 entries/s. The export's peak RSS is printed next to that of an export of
  a tenth of the entries: memory must stay flat.
* verify: ``verify.py`` on the bundle, in a child process without Django, against
  reading every member of the bundle and hashing it with SHA-256 (the least any
  verifier must do to check the manifest). Target >= 100,000 entries/s. Measured
  as verify.py chooses (two processes for a big bundle: its proof worker) and,
  for comparison, with ``--jobs 1``; the CPU figure includes the worker's.

Targets are judged on wall-clock rates. Each figure also prints entries per CPU
second of the measured process (for the export that includes its writer thread but
not the PostgreSQL server) and how busy the machine was just before: on a small
shared machine other processes change wall-clock figures a lot, so each measurement
first waits (up to --wait-idle seconds) for the machine to be idle.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

perf = time.perf_counter
TEXT = "Promotion reviewed: offline metrics within the agreed tolerance, bias report attached."
BASE = datetime(2026, 1, 1, tzinfo=UTC)
STEP_US = 1000  # one entry per millisecond, so a time range selects an exact number of entries
SUBJECTS = 1000


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def peak_rss_mb() -> float:
    """This process's own peak RSS. ``ru_maxrss`` keeps the parent's peak across fork and exec, so a child of a
    big parent (bench/scale.py) would report the parent's; /proc's VmHWM belongs to this address space only."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["LEDGER_INTEGRATE_ON_COMMIT"] = "0"
    import django
    from django.conf import settings

    django.setup()
    settings.DEBUG = False  # no query logging wrapper around cursors, as in production


def stamp(i: int) -> str:
    from audit.canonical import format_timestamp

    return format_timestamp(BASE + timedelta(microseconds=STEP_US * i))


# --------------------------------------------------------------------------------------
# the ledger


def generate(n: int) -> dict[str, float]:
    """Insert ``n`` pending rows in bulk (what record() would have written), then integrate them."""
    from django.db import connection, transaction

    from audit import ledger
    from audit.canonical import canonical_json

    assert canonical_json({"text": TEXT, "reference": "GOV-1"}) == f'{{"reference":"GOV-1","text":"{TEXT}"}}'
    columns = "timestamp, event_type, actor_type, actor_id, subject_type, subject_id, payload_json, idempotency_key"

    def row(i: int) -> tuple[Any, ...]:
        return (stamp(i), "ledger.note_added", "user", str(1000 + i % 50), "model_version",
                f"bench-model/{i % SUBJECTS}", f'{{"reference":"GOV-{i}","text":"{TEXT}"}}', None)

    t0 = perf()
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        raw = connection.connection
        with raw.cursor() as cur, cur.copy(f"COPY audit_pendingentry ({columns}) FROM STDIN") as copy:
            for i in range(n):
                copy.write_row(row(i))
        raw.commit()
    else:
        for start in range(0, n, 50_000):
            with transaction.atomic(), connection.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO audit_pendingentry ({columns}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    [row(i) for i in range(start, min(n, start + 50_000))],
                )
    t_insert = perf() - t0
    log(f"    bulk insert of {n:,} pending rows: {t_insert:.1f}s")
    t0 = perf()
    done = ledger.integrate()
    t_integrate = perf() - t0
    log(f"    integrate(): {done:,} entries in {t_integrate:.1f}s ({done / t_integrate:,.0f} entries/s)")
    with connection.cursor() as cur:  # fresh statistics, as autovacuum / a DBA would have by now
        cur.execute("ANALYZE")
    from audit.services.checkpoints import checkpoint_create

    checkpoint = checkpoint_create()
    assert checkpoint is not None
    log(f"    checkpoint of tree size {checkpoint.tree_size:,}")
    return {"insert_seconds": t_insert, "integrate_seconds": t_integrate}


def recreate_postgres(url: str, force: bool) -> None:
    import dj_database_url
    import psycopg
    from psycopg import sql

    cfg = dj_database_url.parse(url)
    name = cfg["NAME"]
    if "bench" not in name and not force:
        sys.exit(f"refusing to drop database {name!r}: its name does not contain 'bench' (use --force)")
    info = {k: v for k, v in {"host": cfg.get("HOST"), "port": cfg.get("PORT"), "user": cfg.get("USER"),
                              "password": cfg.get("PASSWORD")}.items() if v}
    for maintenance in ("postgres", "test", "template1"):
        try:
            admin = psycopg.connect(dbname=maintenance, autocommit=True, **info)
        except psycopg.OperationalError:
            continue
        with admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return
    sys.exit(f"cannot connect to a maintenance database to re-create {name}")


# --------------------------------------------------------------------------------------
# children: each measures its own time and peak memory


def child_generate(n: int) -> None:
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    result = generate(n)
    print(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}))


def child_export(out: str, since: str | None, until: str | None) -> None:
    setup_django()
    from audit.export.scope import parse_scope
    from audit.export.service import export_create, export_run

    rss0 = peak_rss_mb()
    t0 = perf()
    job = export_create(actor=None, scope=parse_scope(since=since, until=until), enqueue=False)
    job = export_run(export_id=job.pk, out=Path(out))
    seconds = perf() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": seconds, "entries": job.entries_done, "bytes": job.file_size,
                      "peak_rss_mb": peak_rss_mb(), "rss_after_setup_mb": rss0,
                      "cpu_seconds": usage.ru_utime + usage.ru_stime}))


def child_verify(bundle: str, jobs: str) -> None:
    # verify.py as a recipient runs it: no Django, no project code.
    spec = importlib.util.spec_from_file_location("verify", ROOT / "audit" / "offline_verify.py")
    assert spec is not None and spec.loader is not None
    verify = importlib.util.module_from_spec(spec)
    sys.modules["verify"] = verify  # as when run as a script: its proof worker's function can be found by name
    spec.loader.exec_module(verify)
    cpu0 = time.process_time()
    t0 = perf()
    report = verify.verify_bundle(bundle, jobs=int(jobs) if jobs else None)
    seconds = perf() - t0
    # CPU of this process and of verify.py's proof worker (a child process, if it started one)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"seconds": seconds, "ok": report.ok, "entries": report.entries,
                      "failures": report.failures[:3], "peak_rss_mb": peak_rss_mb(), "jobs": jobs or "auto",
                      "cpu_seconds": time.process_time() - cpu0 + children.ru_utime + children.ru_stime}))


def busy_fraction(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over ``seconds`` (Linux /proc/stat; 0.0 elsewhere)."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
        return sum(fields[:8]), fields[3] + fields[4]

    try:
        t1, i1 = sample()
        time.sleep(seconds)
        t2, i2 = sample()
    except OSError:
        return 0.0
    return 1 - (i2 - i1) / max(1, t2 - t1)


def wait_for_idle(max_wait: float) -> float:
    """Other processes skew a figure on a small machine: wait (bounded) until it has been idle for 3 s.

    Returns how busy the machine was just before measuring (share of all CPUs)."""
    os.sync()  # the previous step's files are written out first: their writeback would run during the figure
    deadline = perf() + max_wait
    quiet = 0
    busy = busy_fraction()
    while max_wait > 0 and quiet < 3:
        quiet = quiet + 1 if busy < 0.10 else 0
        if quiet >= 3:
            break
        if perf() > deadline:
            log(f"    the machine is still {busy:.0%} busy after {max_wait:.0f}s; measuring anyway")
            break
        busy = busy_fraction()
    return busy


def run_child(*args: str) -> dict[str, Any]:
    # The parent never imports Django, so a child's peak RSS (which starts from the parent's) is its own.
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        sys.exit(f"child {args[0]} failed:\n{proc.stdout}\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------------------
# baselines


def baseline_zip(bundle: Path, work: Path) -> float:
    """Time to write the bundle's member bytes into a new zip, same compression per member."""
    extracted = work / "extracted"
    shutil.rmtree(extracted, ignore_errors=True)
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(extracted)
        members = [(i.filename, i.compress_type) for i in zf.infolist()]
    for name, _ in members:  # warm the page cache
        with (extracted / name).open("rb") as fh:
            while fh.read(1 << 22):
                pass
    target = work / "baseline.zip"
    t0 = perf()
    with zipfile.ZipFile(target, "w", allowZip64=True) as out:
        for name, compress in members:
            level = None if compress == zipfile.ZIP_STORED else (1 if name == "entries.jsonl" else 6)
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = compress
            info._compresslevel = level  # type: ignore[attr-defined]
            with (extracted / name).open("rb") as src, out.open(info, "w", force_zip64=True) as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
    seconds = perf() - t0
    target.unlink()
    shutil.rmtree(extracted, ignore_errors=True)
    return seconds


def baseline_sha256(bundle: Path) -> float:
    """Time to read every member of the bundle and hash it."""
    t0 = perf()
    with zipfile.ZipFile(bundle) as zf:
        for info in zf.infolist():
            digest = hashlib.sha256()
            with zf.open(info) as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
    return perf() - t0


# --------------------------------------------------------------------------------------


def verify_figures(bundle: Path, args: argparse.Namespace, figures: dict[str, Any]) -> dict[str, Any]:
    """verify.py with --verify-jobs, then with the other setting for comparison."""
    jobs = "" if args.verify_jobs == "auto" else args.verify_jobs
    other = "1" if jobs != "1" else ""
    figures["busy_before_verify"] = wait_for_idle(args.wait_idle)
    log(f"verify.py on the bundle (--jobs {jobs or 'auto'})")
    verified = run_child("--child-verify", str(bundle), jobs)
    if not verified["ok"]:
        log(f"    VERIFICATION FAILED: {verified['failures']}")
    verify_rate = verified["entries"] / verified["seconds"]
    log(f"    {verified['entries']:,} entries in {verified['seconds']:.2f}s ({verify_rate:,.0f} entries/s; "
        f"{verified['cpu_seconds']:.2f}s CPU), peak RSS {verified['peak_rss_mb']:.0f} MB")
    figures["busy_before_verify_other"] = wait_for_idle(args.wait_idle)
    log(f"    for comparison, --jobs {other or 'auto'}")
    compared = run_child("--child-verify", str(bundle), other)
    log(f"    {compared['entries']:,} entries in {compared['seconds']:.2f}s "
        f"({compared['entries'] / compared['seconds']:,.0f} entries/s; {compared['cpu_seconds']:.2f}s CPU)")
    figures["verify_other"] = compared
    return verified


def verify_only(bundle: Path, args: argparse.Namespace) -> int:
    figures: dict[str, Any] = {"bundle": str(bundle), "bundle_bytes": bundle.stat().st_size}
    log(f"bench/export.py: verify figures only, on {bundle} ({bundle.stat().st_size / 1e6:,.0f} MB)")
    verified = verify_figures(bundle, args, figures)
    t_sha = baseline_sha256(bundle)
    log(f"    baseline: every member read and hashed with SHA-256 in {t_sha:.2f}s")
    rate = verified["entries"] / verified["seconds"]
    other = figures["verify_other"]
    print()
    print(f"verify   {rate:10,.0f} entries/s  {verified['entries'] / verified['cpu_seconds']:10,.0f} per CPU s  "
          f"{t_sha / verified['seconds']:.3f}x sha256 over the same bytes (busy before "
          f"{figures['busy_before_verify']:.0%})  {'PASS' if rate >= 100_000 and verified['ok'] else 'FAIL'}")
    print(f"  other  {other['entries'] / other['seconds']:10,.0f} entries/s  (jobs {other['jobs']}, busy before "
          f"{figures['busy_before_verify_other']:.0%})")
    figures.update({"verify": verified, "baseline_sha256_seconds": t_sha, "verify_rate": rate})
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0 if verified["ok"] and rate >= 100_000 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="50,000 entries instead of 1,000,000")
    parser.add_argument("--entries", type=int, help="ledger size (default 1,000,000; 50,000 with --quick)")
    parser.add_argument("--workdir", help="where the SQLite database, keys and bundles go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--force", action="store_true", help="drop a PostgreSQL database without 'bench' in its name")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--wait-idle", type=float, default=120.0, metavar="S",
                        help="before each measurement wait up to S seconds for the machine to be idle (0: don't)")
    parser.add_argument("--bundle", metavar="ZIP",
                        help="only the verify figures, on this existing bundle (e.g. one kept with --keep)")
    parser.add_argument("--child-generate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-export", nargs=3, metavar=("OUT", "SINCE", "UNTIL"), help=argparse.SUPPRESS)
    parser.add_argument("--verify-jobs", choices=("auto", "1", "2"), default="auto",
                        help="verify.py --jobs for the verify figure (default: its own choice, two processes for "
                        "a big bundle on two or more CPUs); the other setting is measured too, for comparison")
    parser.add_argument("--child-verify", nargs=2, metavar=("BUNDLE", "JOBS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_generate:
        child_generate(args.child_generate)
        return 0
    if args.child_export:
        out, since, until = args.child_export
        child_export(out, since or None, until or None)
        return 0
    if args.child_verify:
        child_verify(*args.child_verify)
        return 0

    if args.bundle:
        return verify_only(Path(args.bundle), args)
    n = args.entries or (50_000 if args.quick else 1_000_000)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-export-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["VAR_DIR"] = str(work / "var")
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        recreate_postgres(url, args.force)
        engine = "PostgreSQL"
    else:
        os.environ.pop("DATABASE_URL", None)
        db = work / "var" / "governance.sqlite3"
        if db.exists():
            db.unlink()
        engine = "SQLite"
    log(f"bench/export.py: {n:,} entries on {engine}; work directory {work}")
    figures: dict[str, Any] = {"entries": n, "engine": engine}
    log("generating the ledger (bulk insert of pending rows, then the real sequencer)")
    figures["generate"] = run_child("--child-generate", str(n))
    g = figures["generate"]
    log(f"    {g['insert_seconds']:.1f}s to insert, {g['integrate_seconds']:.1f}s to integrate "
        f"({n / g['integrate_seconds']:,.0f} entries/s)")

    wait_for_idle(args.wait_idle)
    log("export of a tenth of the ledger (for the memory comparison)")
    small = run_child("--child-export", str(work / "small.zip"), stamp(0), stamp(n // 10 - 1))
    log(f"    {small['entries']:,} entries in {small['seconds']:.2f}s, peak RSS {small['peak_rss_mb']:.0f} MB")
    figures["busy_before_export"] = wait_for_idle(args.wait_idle)
    log("export of the whole ledger")
    bundle = work / "bundle.zip"
    export = run_child("--child-export", str(bundle), "", "")
    export_rate = export["entries"] / export["seconds"]
    log(f"    {export['entries']:,} entries in {export['seconds']:.2f}s ({export_rate:,.0f} entries/s; "
        f"{export['cpu_seconds']:.2f}s CPU), {export['bytes'] / 1e6:,.0f} MB, peak RSS {export['peak_rss_mb']:.0f} MB")
    t_zip = baseline_zip(bundle, work)
    log(f"    baseline: the same bytes written to a zip in {t_zip:.2f}s")

    verified = verify_figures(bundle, args, figures)
    verify_rate = verified["entries"] / verified["seconds"]
    t_sha = baseline_sha256(bundle)
    log(f"    baseline: every member read and hashed with SHA-256 in {t_sha:.2f}s")

    flat = export["peak_rss_mb"] <= small["peak_rss_mb"] * 1.25 + 32
    results = [
        ("export", export_rate, export["entries"] / export["cpu_seconds"], 50_000, t_zip / export["seconds"],
         "zip of the same bytes", figures["busy_before_export"]),
        ("verify", verify_rate, verified["entries"] / verified["cpu_seconds"], 100_000, t_sha / verified["seconds"],
         "sha256 over the same bytes", figures["busy_before_verify"]),
    ]
    print()
    print(f"{'figure':8} {'entries/s':>10} {'per CPU s':>10} {'target':>8} {'ratio':>8}  baseline (busy before)")
    ok = verified["ok"] and flat
    for name, rate, cpu_rate, target, ratio, base, busy in results:
        passed = rate >= target
        ok = ok and passed
        print(f"{name:8} {rate:10,.0f} {cpu_rate:10,.0f} {target:8,} {ratio:7.3f}x  {base} ({busy:.0%})  "
              f"{'PASS' if passed else 'FAIL'}")
    print(f"memory: export peak RSS {export['peak_rss_mb']:.0f} MB for {export['entries']:,} entries vs "
          f"{small['peak_rss_mb']:.0f} MB for {small['entries']:,}: {'flat' if flat else 'NOT FLAT'}; "
          f"verify.py peak RSS {verified['peak_rss_mb']:.0f} MB")
    figures.update({"export": export, "export_small": small, "baseline_zip_seconds": t_zip, "verify": verified,
                    "baseline_sha256_seconds": t_sha, "export_rate": export_rate, "verify_rate": verify_rate,
                    "memory_flat": flat, "bundle_bytes": export["bytes"]})
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    if not args.keep and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
