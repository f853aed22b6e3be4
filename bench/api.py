#!/usr/bin/env python
"""API benchmark: the app under gunicorn on PostgreSQL, loaded from other processes over loopback.

    .venv/bin/python bench/api.py [--quick] [--workers N] [--threads N]

Creates (and at the end drops) its own database ``bench_api`` on
``postgres://root@127.0.0.1:5432/`` (``--db-url`` to change; the name must contain
"bench"), migrates it, seeds it (tests/api/seed.py: people, a model, pending staging
promotions, a service account with an all-scopes token, approver sessions), and serves
``config.wsgi`` with gunicorn (gthread workers, keep-alive), DEBUG off, with a
generated SECRET_KEY, LEDGER_PII_KEK, Ed25519 LEDGER_SIGNING_KEY and MLFLOW_WEBHOOK_SECRET.

As in production, writers only append to the ledger's intake queue
(``LEDGER_INTEGRATE_ON_COMMIT=0``) and a separate sequencer integrates: here a thread of
this script runs ``audit.ledger.integrate()`` every second (the beat schedule's
``LEDGER_INTEGRATE_INTERVAL``). With Redis on 127.0.0.1:6379 it is the Celery broker
(db 14: tasks are only enqueued, no worker runs; an approval that completes queues its
deploy task as in production) and the cache (db 13: the throttle's counters, shared by
the workers); both databases are flushed at the end. ``API_THROTTLE_RATE`` is raised so
the bench measures the API, not its rate limit. Database connections are persistent
(``DB_CONN_MAX_AGE=600``), as a deployment behind gunicorn would configure them.

Figures (each beside a baseline measured in the same run on the same server: the
trivial health endpoint at the same concurrency):

a. ingest: 4 clients POST batches of 1,000 runtime events to ``/api/v1/events`` →
   events/s (target >= 15,000/s); ratio = its requests/s over the baseline's.
b. closed loop (capacity): 50 clients, each an approver's session, sending back to back:
   1 ``POST /api/v1/promotions/{id}/approve`` (their own pending promotions) per 4
   ``GET /api/v1/promotions/{id}`` → p50/p99 and requests/s; ratio = p99 over the
   baseline's p99. With no think time every client re-sends at once, so latency is about
   50 / throughput (Little's law): on 2 cores even ``/healthz`` misses 100 ms here. This
   figure measures capacity and has no verdict; it is not where the latency target can be
   judged. Before it, the bench waits for the sequencer to integrate figure a's backlog (and
   reports how fast it did), so b measures the API, not the catch-up.
b'. think time (the latency target, p99 <= 100 ms): the same 50 approver sessions and mix,
   each client waiting a random 0.5-1.5 s after each answer (an offered load of about
   50 requests/s, as 50 people at their desks would send), for twice the measurement time;
   p50/p99 of approve and read separately and together, beside ``/healthz`` from 50
   clients with the same think time. Target met when the p99 of all requests <= 100 ms.

Every figure is printed with the machine's load during its measurement (load average, how busy the CPUs
were, and how much of that was neither the bench's server, its clients nor its sequencer: PostgreSQL and
whatever else runs), and as 3 repetitions (consecutive windows of its measurement: a's events/s, b's
req/s, b''s p99): a WARNING line says when they differ by more than 20% (a noisy machine, or a figure
that drifts). The last line is the run's SUMMARY (b' p99 and ingest against their targets, the /healthz
p99 beside them, the load); the exit status is 1 when a target is missed.

Load comes from ``--procs`` processes, each running its share of the clients as threads
with one keep-alive ``http.client`` connection each. The whole run is bounded (about 2.5
min by default, 1 min with --quick). Results: a table on stdout and in
``bench/results/api-<date>.txt``.
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import platform
import random
import runpy
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
PY = sys.executable
GUNICORN_CONF = ROOT / "docker" / "gunicorn.conf.py"
perf = time.perf_counter


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    s = sorted(values)
    if not s:
        return float("nan")
    rank = max(1, int(-(-p * len(s) // 100)))
    return s[rank - 1]


# --------------------------------------------------------------------------------------
# environment, database, server


def redis_up(port: int = 6379) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_flush(db: int) -> None:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2) as sock:
            sock.sendall(f"SELECT {db}\r\nFLUSHDB\r\n".encode())
            sock.recv(64)
    except OSError:
        pass


def make_env(args: argparse.Namespace, workdir: Path, use_redis: bool) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = workdir / "ledger-signing-key.pem"
    key.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "CELERY_BROKER_URL",
                                                             "CACHE_URL", "PYTEST_CURRENT_TEST")}
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "LEDGER_PII_KEK": base64.b64encode(secrets.token_bytes(32)).decode(),
        "LEDGER_SIGNING_KEY": str(key),
        "MLFLOW_WEBHOOK_SECRET": secrets.token_urlsafe(32),
        "DATABASE_URL": args.db_url,
        "DB_CONN_MAX_AGE": "600",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LEDGER_INTEGRATE_ON_COMMIT": "0",
        "API_THROTTLE_RATE": "10000000/min",
        # Production refuses to start with no way to sign in; the load's sessions are made directly, not by
        # signing in, but the server still needs one (docs/identity.md).
        "LOCAL_LOGIN": "1",
        "VAR_DIR": str(workdir / "var"),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        # Plain HTTP on loopback stands for what a TLS-terminating proxy forwards: no redirect to
        # https, and cookies the load clients send back over http (the cost of neither is measured).
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
    })
    if use_redis:
        env["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/14"
        env["CACHE_URL"] = "redis://127.0.0.1:6379/13"
    return env


def recreate_database(url: str, drop_only: bool = False, template: str | None = None) -> None:
    """Drop the bench database and create it empty, or as a copy of ``template`` (a kept seed)."""
    import dj_database_url
    import psycopg
    from psycopg import sql

    cfg = dj_database_url.parse(url)
    info = {"host": cfg.get("HOST") or None, "port": cfg.get("PORT") or None, "user": cfg.get("USER") or None,
            "password": cfg.get("PASSWORD") or None}
    for maintenance in ("postgres", "test", "template1"):
        try:
            admin = psycopg.connect(dbname=maintenance, autocommit=True, **info)
        except psycopg.OperationalError:
            continue
        with admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(cfg["NAME"])))
            if template is not None:
                admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(cfg["NAME"]), sql.Identifier(template)))
            elif not drop_only:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(cfg["NAME"])))
        return
    sys.exit(f"cannot reach a maintenance database to (re)create {cfg['NAME']}")


def child_seed(out: Path, pending: int, approvers: int) -> None:
    """Runs in a subprocess with the bench environment: seed and write what the clients need."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
    from django.contrib.sessions.backends.db import SessionStore

    from governance import registry
    from tests.api.seed import seed

    t0 = perf()
    # The MLflow registry an approval re-reads (a SQLite file under VAR_DIR here) is created now, by one
    # process: left to the first approvals, every gunicorn worker ran MLflow's migrations on it at once,
    # broke it ("table _alembic_tmp_latest_metrics already exists") and every approval failed with a 500.
    registry.client().search_registered_models(max_results=1)
    seeded = seed(versions=4, pending=pending, approvers=approvers, events=10)
    mirror_into_mlflow(seeded.pending_promotions)
    # The backend a password sign-in records: the first that can load a session's user (the throttle
    # backend before it only refuses sign-ins and has no get_user, so a session naming it is a 500).
    backend = next(path for path in settings.AUTHENTICATION_BACKENDS if hasattr(load_backend(path), "get_user"))
    sessions = []
    for user in seeded.approvers:
        store = SessionStore()
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = backend
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.create()
        sessions.append(store.session_key)
    out.write_text(json.dumps({
        "token": seeded.token, "sessions": sessions, "pending": seeded.pending_promotions,
        "promotions": seeded.promotions, "model": seeded.model, "version": seeded.versions[1],
        "seconds": perf() - t0,
    }))


def mirror_into_mlflow(pending: list[int]) -> None:
    """Put the pending requests' models and versions into the bench's MLflow registry, then re-read them.

    An approval re-reads its version from MLflow first (``version_evidence_refresh``). With an empty registry
    every approval found its version gone, marked it DELETED, wrote an entry and re-evaluated the request: a
    third of its cost, and not what happens in production. The re-read here aligns the mirror with what
    MLflow now holds, once, so the approvals measured find their evidence unchanged, as they usually do.
    """
    from governance import registry
    from governance.models import ModelVersion, PromotionRequest
    from governance.services.registry_mirror import version_evidence_refresh

    client = registry.client()
    wanted = (PromotionRequest.objects.filter(pk__in=pending).select_related("version__model")
              .order_by("version__model__name", "version__version"))
    versions = {r.version.pk: r.version for r in wanted}
    highest: dict[str, int] = {}
    for mv in versions.values():
        highest[mv.model.name] = max(highest.get(mv.model.name, 0), mv.version)
    mirrored = {(mv.model.name, mv.version): mv for mv in ModelVersion.objects.filter(
        model__name__in=highest).select_related("model")}
    for name, top in highest.items():
        first = mirrored[(name, 1)]
        client.create_registered_model(name, tags=first.model.tags or None, description=first.model.description)
        for number in range(1, top + 1):  # MLflow numbers versions itself, from 1
            mv = mirrored[(name, number)]
            client.create_model_version(name, source=mv.source or f"mlflow-artifacts:/1/{mv.run_id}/artifacts/model",
                                        tags=mv.tags or None, description=mv.description)
    for mv in versions.values():
        version_evidence_refresh(version=mv)


def start_server(env: dict[str, str], port: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    gunicorn = shutil.which("gunicorn", path=str(Path(PY).parent)) or "gunicorn"
    # The shipped settings (docker/gunicorn.conf.py: workers x threads for the machine, each worker warmed
    # before it serves), with the bench's address, keep-alive and backlog.
    cmd = [gunicorn, "config.wsgi:application", "--config", str(GUNICORN_CONF), "--bind", f"127.0.0.1:{port}",
           "--workers", str(args.workers), "--worker-class", "gthread", "--threads", str(args.threads),
           "--keep-alive", "30",
           "--backlog", "512", "--log-level", "warning", "--error-logfile", "-"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    SERVER_PGID[:] = [proc.pid]
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            conn.close()
            return proc
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"gunicorn exited with {proc.returncode}")
            time.sleep(0.3)
    proc.terminate()
    sys.exit("gunicorn did not answer within 60 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------------------
# load


@dataclass
class Sample:
    kind: str
    status: int
    seconds: float
    items: int = 0
    at: float = 0.0  # when the request was sent, seconds after the measurement started (its repetition)


@dataclass
class Plan:
    kind: str  # "health", "ingest", "approve"
    port: int
    duration: float
    path: str = "/healthz"
    headers: dict[str, str] = field(default_factory=dict)
    token: str = ""
    model: str = ""
    version: int = 1
    batch: int = 1000
    approvals: list[int] = field(default_factory=list)
    reads: list[int] = field(default_factory=list)
    read_per_approve: int = 4
    think: tuple[float, float] | None = None  # seconds to wait after each answer (b'); None: back to back


def _request(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None,
             headers: dict[str, str]) -> int:
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def _batch(plan: Plan, n: int) -> bytes:
    now = datetime.now(UTC).isoformat()
    events = [{"event_id": str(uuid.uuid4()), "type": "monitoring.data_drift_detected", "occurred_at": now,
               "model": plan.model, "version": plan.version, "environment": "staging", "metric": "psi",
               "value": 0.31, "threshold": 0.2, "detail": {"batch": n, "i": i}} for i in range(plan.batch)]
    return json.dumps({"events": events}).encode()


def client_loop(plan: Plan, start_at: float, out: list[Sample]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", plan.port, timeout=60)
    rng = random.Random(hash((os.getpid(), threading.get_ident())))
    # Bodies are built before the clock starts (the client's JSON work is not the server's).
    bodies = [_batch(plan, i) for i in range(3)] if plan.kind == "ingest" else []
    pending = list(plan.approvals)
    while time.time() < start_at:
        time.sleep(0.001)
    end = start_at + plan.duration
    if plan.think:
        # Clients start spread over one think time, not in lockstep.
        time.sleep(rng.uniform(0, plan.think[1]))
    n = 0
    while time.time() < end:
        if n and plan.think:
            time.sleep(rng.uniform(*plan.think))
            if time.time() >= end:
                break
        n += 1
        t0 = perf()
        sent = time.time() - start_at
        try:
            if plan.kind == "health":
                status = _request(conn, "GET", plan.path, None, plan.headers)
                out.append(Sample("health", status, perf() - t0))
            elif plan.kind == "ingest":
                body = bodies.pop() if bodies else _batch(plan, n)
                t0 = perf()
                status = _request(conn, "POST", "/api/v1/events", body, {
                    **plan.headers, "Content-Type": "application/json"})
                out.append(Sample("ingest", status, perf() - t0, plan.batch))
            else:
                if pending and n % (plan.read_per_approve + 1) == 1:
                    pk = pending.pop(0)
                    status = _request(conn, "POST", f"/api/v1/promotions/{pk}/approve",
                                      b'{"comment": "metrics, card and bias report reviewed"}',
                                      {**plan.headers, "Content-Type": "application/json"})
                    out.append(Sample("approve", status, perf() - t0))
                else:
                    pk = rng.choice(plan.reads)
                    status = _request(conn, "GET", f"/api/v1/promotions/{pk}", None, plan.headers)
                    out.append(Sample("read", status, perf() - t0))
        except (OSError, http.client.HTTPException):
            out.append(Sample(plan.kind, 0, perf() - t0))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", plan.port, timeout=60)
        out[-1].at = sent
    conn.close()


def process_main(plans: list[Plan], start_at: float, queue: Any) -> None:
    results: list[list[Sample]] = [[] for _ in plans]
    threads = [threading.Thread(target=client_loop, args=(p, start_at, r)) for p, r in zip(plans, results,
                                                                                             strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = os.times()
    queue.put(([s for r in results for s in r], cpu.user + cpu.system))


def run_load(plans: list[Plan], procs: int) -> tuple[list[Sample], float, float]:
    """Run ``plans`` (one per client) spread over ``procs`` processes; (samples, wall seconds, client CPU s).
    The machine's load during the run is left in ``LAST_LOAD`` (``Machine``)."""
    watch = Machine()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    groups = [plans[i::procs] for i in range(min(procs, len(plans)))]
    start_at = time.time() + 1.0 + 0.05 * len(groups)
    workers = [ctx.Process(target=process_main, args=(g, start_at, queue)) for g in groups]
    for w in workers:
        w.start()
    samples: list[Sample] = []
    cpu = 0.0
    for _ in workers:
        got, used = queue.get(timeout=plans[0].duration + 300)
        samples.extend(got)
        cpu += used
    for w in workers:
        w.join(timeout=30)
    LAST_LOAD.clear()
    LAST_LOAD.update(watch.done(cpu))
    return samples, plans[0].duration, cpu


# --------------------------------------------------------------------------------------
# the machine's load and the figures' repetitions

REPETITIONS = 3  # each figure's measurement is cut into this many consecutive windows
SPREAD = 0.20  # a WARNING when a figure's repetitions differ by more than this
SERVER_PGID: list[int] = []  # gunicorn's process group (its arbiter and workers)
LAST_LOAD: dict[str, Any] = {}


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole machine since boot (/proc/stat; (0, 0) where there is none)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _server_cpu_s() -> float:
    """CPU seconds used so far by the live processes of gunicorn's process group (arbiter and workers)."""
    if not SERVER_PGID:
        return 0.0
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == SERVER_PGID[0]:  # pgrp; utime, stime: fields 14, 15 of stat(5)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def load_now() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


class Machine:
    """The machine's CPU over one measurement: how busy it was, and how much of that was not the bench
    (its server, its load processes, this process's sequencer): PostgreSQL, and whatever else runs."""

    def __init__(self) -> None:
        self.ticks = _cpu_ticks()
        self.server = _server_cpu_s()
        self.own = sum(os.times()[:2])
        self.wall = perf()

    def done(self, client_cpu_s: float) -> dict[str, Any]:
        busy0, total0 = self.ticks
        busy1, total1 = _cpu_ticks()
        cores = os.cpu_count() or 1
        wall = perf() - self.wall
        machine_s = (busy1 - busy0) / max(1, total1 - total0) * cores * wall if total1 > total0 else float("nan")
        bench_s = (_server_cpu_s() - self.server) + client_cpu_s + (sum(os.times()[:2]) - self.own)
        return {"loadavg": [round(x, 2) for x in os.getloadavg()], "cpu_busy_pct": round(
            100 * machine_s / (cores * wall), 1) if wall else float("nan"),
            "other_cpu_pct": round(100 * max(0.0, machine_s - bench_s) / (cores * wall), 1) if wall else float("nan")}


def load_text(load: dict[str, Any]) -> str:
    one, five, _ = load["loadavg"]
    return (f"load {one:.2f}/{five:.2f}, CPU busy {load['cpu_busy_pct']:.0f}% of {os.cpu_count()} cores, "
            f"{load['other_cpu_pct']:.0f}% outside server/clients/sequencer (PostgreSQL, others)")


def repetitions(samples: list[Sample], duration: float, n: int = REPETITIONS) -> list[list[Sample]]:
    """``samples`` cut into ``n`` consecutive windows of the measurement, by when each request was sent."""
    out: list[list[Sample]] = [[] for _ in range(n)]
    for s in samples:
        out[min(n - 1, max(0, int(s.at / (duration / n))))].append(s)
    return out


def spread_warning(figure: str, what: str, values: list[float]) -> str | None:
    """A WARNING line when ``values`` (one per repetition) differ by more than ``SPREAD``, else None."""
    good = [v for v in values if v == v and v > 0]  # NaN: an empty window
    if len(good) < len(values) or min(good) * (1 + SPREAD) < max(good):
        return (f"WARNING: {figure}: {what} varies by more than {SPREAD:.0%} between its {len(values)} "
                f"repetitions: {', '.join(f'{v:,.1f}' for v in values)} (a noisy machine? see the load)")
    return None


WARMUP = 40


def warm_up(port: int, reserved: list[int], sessions: list[str]) -> float:
    """Approve ``reserved`` from 20 concurrent connections (so every worker serves some); the slowest call."""
    csrf = secrets.token_hex(16)
    slowest = [0.0]

    def one(ids: list[int], session: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        headers = {"Cookie": f"sessionid={session}; csrftoken={csrf}", "X-CSRFToken": csrf,
                   "Content-Type": "application/json"}
        for pk in ids:
            t0 = perf()
            _request(conn, "POST", f"/api/v1/promotions/{pk}/approve", b'{"comment": "warm-up"}', headers)
            _request(conn, "GET", f"/api/v1/promotions/{pk}", None, headers)
            slowest[0] = max(slowest[0], perf() - t0)
        conn.close()

    threads = [threading.Thread(target=one, args=(reserved[i::20], sessions[i % len(sessions)]))
               for i in range(min(20, len(reserved)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return slowest[0]


# --------------------------------------------------------------------------------------
# the sequencer (a separate process in production: Celery beat → audit.tasks.integrate)


class Sequencer(threading.Thread):
    def __init__(self, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.stop = threading.Event()
        self.integrated = 0
        self.busy = 0.0

    def run(self) -> None:
        from django.db import connection

        from audit.ledger import integrate

        while not self.stop.wait(self.interval):
            t0 = perf()
            try:
                self.integrated += integrate()
            except Exception as exc:  # keep the bench going; the figure reports the backlog
                log(f"    sequencer: {type(exc).__name__}: {exc}")
            self.busy += perf() - t0
        connection.close()


def pending_count() -> int:
    from audit.models import PendingEntry

    return PendingEntry.objects.count()


def drain(sequencer: Sequencer, limit: float = 240.0) -> dict[str, float] | None:
    """Wait until the sequencer has integrated figure a's backlog, so that b measures the API and
    not the catch-up; returns the backlog, seconds and entries/s (None if it did not drain in time)."""
    t0 = perf()
    start_count = sequencer.integrated
    backlog = pending_count()
    while perf() - t0 < limit:
        left = pending_count()
        if left == 0:
            seconds = perf() - t0
            done = sequencer.integrated - start_count
            log(f"    sequencer drained {backlog:,} pending entries in {seconds:.1f}s")
            return {"backlog": backlog, "seconds": round(seconds, 1),
                    "per_s": round(done / seconds) if seconds else 0.0}
        time.sleep(0.5)
    log(f"    sequencer still has {pending_count():,} pending after {limit:.0f}s; measuring anyway")
    return None


# --------------------------------------------------------------------------------------
# main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short run (about 1 min)")
    parser.add_argument("--db-url", default="postgres://root@127.0.0.1:5432/bench_api")
    shipped = runpy.run_path(str(GUNICORN_CONF))  # its defaults for this machine (or WEB_CONCURRENCY...)
    parser.add_argument("--workers", type=int, default=shipped["workers"],
                        help="gunicorn workers (default: docker/gunicorn.conf.py's, %(default)s here)")
    parser.add_argument("--threads", type=int, default=shipped["threads"],
                        help="gthread threads per gunicorn worker (default: docker/gunicorn.conf.py's, %(default)s)")
    parser.add_argument("--procs", type=int, default=0, help="load-generating processes (default: cores)")
    parser.add_argument("--seconds", type=float, default=0, help="duration of each measurement")
    parser.add_argument("--clients", type=int, default=50, help="clients of figure b")
    parser.add_argument("--keep-db", action="store_true",
                        help="keep a copy of the freshly seeded database and MLflow registry (for --reuse-db)")
    parser.add_argument("--reuse-db", action="store_true",
                        help="skip seeding: start from a fresh copy of the seed kept by an earlier --keep-db run "
                        "(so consecutive runs measure the same starting state without seeding each time)")
    parser.add_argument("--pending", type=int, default=0, help="pending promotions to seed")
    parser.add_argument("--only", default="abt", help="figures to run (a, b, t: b with think time, needs b)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child-seed", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child_seed:
        child_seed(Path(args.child_seed[0]), int(args.child_seed[1]), int(args.child_seed[2]))
        return 0
    if "bench" not in args.db_url.rsplit("/", 1)[-1]:
        sys.exit("refusing a database whose name does not contain 'bench'")
    seconds = args.seconds or (8.0 if args.quick else 20.0)
    procs = args.procs or max(1, os.cpu_count() or 1)
    pending = args.pending or (600 if args.quick else 2000)  # WARMUP of them are approved before measuring
    use_redis = redis_up()
    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    (workdir / "var").mkdir()
    kept = Path(tempfile.gettempdir()) / "bench-api-kept"
    env = make_env(args, workdir, use_redis)
    port = 18000 + os.getpid() % 1000
    started = time.time()
    load_start = os.getloadavg()
    server = None
    sequencer = None
    try:
        log(f"database {args.db_url}; redis: {'yes' if use_redis else 'no (Celery eager, locmem)'}; "
            f"{load_now()} at the start")
        if args.reuse_db:
            seeded = json.loads((kept / "seed.json").read_text())
            env["LEDGER_SIGNING_KEY"] = str(kept / "ledger-signing-key.pem")
            env["LEDGER_PII_KEK"] = (kept / "kek").read_text()
            # The seeded sessions are signed with the seed's SECRET_KEY (and their auth hash derives from it).
            env["SECRET_KEY"] = (kept / "secret-key").read_text()
            recreate_database(args.db_url, template=args.db_url.rsplit("/", 1)[-1] + "_seed")
            shutil.copy(kept / "mlflow.db", workdir / "var" / "mlflow.db")
            log("    started from a fresh copy of the kept seed")
        else:
            recreate_database(args.db_url)
            subprocess.run([PY, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
            seed_file = workdir / "seed.json"
            log(f"seeding {pending} pending promotions and {args.clients} approvers")
            subprocess.run([PY, __file__, "--child-seed", str(seed_file), str(pending), str(args.clients)],
                           cwd=ROOT, env=env, check=True)
            seeded = json.loads(seed_file.read_text())
            log(f"    seeded in {seeded['seconds']:.1f}s")
            if args.keep_db:
                # a copy of the seeded state, made before anything connects to it again
                recreate_database(args.db_url + "_seed", template=args.db_url.rsplit("/", 1)[-1])
                kept.mkdir(exist_ok=True)
                shutil.copy(workdir / "var" / "mlflow.db", kept / "mlflow.db")
                shutil.copy(seed_file, kept / "seed.json")
                shutil.copy(env["LEDGER_SIGNING_KEY"], kept / "ledger-signing-key.pem")
                (kept / "kek").write_text(env["LEDGER_PII_KEK"])
                (kept / "secret-key").write_text(env["SECRET_KEY"])

        os.environ.update(env)
        import django

        django.setup()
        sequencer = Sequencer()
        sequencer.start()

        server = start_server(env, port, args)
        probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        baseline_path = "/healthz"
        if _request(probe, "GET", "/healthz", None, {}) != 200:
            baseline_path = "/api/v1/no-such-endpoint"  # no /healthz yet: a 404 problem, no database work
        probe.close()
        log(f"gunicorn: {args.workers} workers x {args.threads} threads; baseline GET {baseline_path}; "
            f"{procs} load processes; {seconds:.0f}s per measurement")

        auth = {"Authorization": f"Bearer {seeded['token']}"}
        auth = {"Authorization": f"Bearer {seeded['token']}"}
        results: list[dict[str, Any]] = []
        if "a" in args.only:
            figure_a(args, port, procs, seconds, baseline_path, auth, seeded, results)
            drained = drain(sequencer)
            if drained is not None:
                results[-1]["drain"] = drained
        if "b" in args.only:
            figure_b(args, port, procs, seconds, baseline_path, seeded, results)
        time.sleep(2.5)  # let the sequencer catch up once more
        backlog = pending_count()
        info = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "python": platform.python_version(),
            "cpus": os.cpu_count(), "workers": args.workers, "threads": args.threads, "load_procs": procs,
            "seconds": seconds, "redis": use_redis, "baseline": baseline_path,
            "prepared": env.get("DB_PREPARED_STATEMENTS", "1") not in ("0", "false", "no", "off"),
            "sequencer": {"integrated": sequencer.integrated, "busy_s": round(sequencer.busy, 1),
                          "pending_at_end": backlog},
            "load": os.getloadavg(), "load_start": load_start,
        }
        text = report(results, info, time.time() - started)
        print(text)
        log(f"{load_now()} at the end")
        out = args.out or ROOT / "bench" / "results" / f"api-{datetime.now(UTC):%Y%m%d-%H%M}.txt"
        out.write_text(text)
        log(f"written to {out}")
        return 0 if all(r["pass"] for r in results if r["pass"] is not None) else 1
    finally:
        if sequencer is not None:
            sequencer.stop.set()
            sequencer.join(timeout=30)
        if server is not None:
            stop_server(server)
        if use_redis:
            redis_flush(13)
            redis_flush(14)
        if not args.keep_db and not args.reuse_db:
            try:
                from django.db import connections

                connections.close_all()
            except Exception:  # Django may not be set up yet
                pass
            recreate_database(args.db_url, drop_only=True)
        shutil.rmtree(workdir, ignore_errors=True)


def figure_a(args: argparse.Namespace, port: int, procs: int, seconds: float, baseline_path: str,
             auth: dict[str, str], seeded: dict[str, Any], results: list[dict[str, Any]]) -> None:
    """a. ingest: 4 clients posting 1,000-event batches, beside the baseline at 4 clients."""
    base4, wall, _ = run_load([Plan("health", port, seconds, path=baseline_path) for _ in range(4)], procs)
    base_load = dict(LAST_LOAD)
    ingest, wall_i, cpu_i = run_load([Plan("ingest", port, seconds, headers=auth, model=seeded["model"],
                                           version=seeded["version"]) for _ in range(4)], procs)
    load = dict(LAST_LOAD)
    ok = [s for s in ingest if s.status in (200, 201)]
    events_per_s = sum(s.items for s in ok) / wall_i
    per_rep = [sum(s.items for s in rep if s.status in (200, 201)) / (wall_i / REPETITIONS)
               for rep in repetitions(ingest, wall_i)]
    warning = spread_warning("a", "events/s", per_rep)
    base_rps4 = len(base4) / wall
    ingest_rps = len(ok) / wall_i
    results.append({
        "figure": "a", "what": "ingest: 4 clients x POST /api/v1/events (1,000 events)",
        "measured": f"{events_per_s:,.0f} events/s ({ingest_rps:.1f} req/s, "
                    f"p50 {pct([s.seconds for s in ok], 50) * 1000:.0f} ms, "
                    f"p99 {pct([s.seconds for s in ok], 99) * 1000:.0f} ms; {len(ingest) - len(ok)} errors)",
        "baseline": f"{base_rps4:,.0f} req/s (p99 {pct([s.seconds for s in base4], 99) * 1000:.1f} ms)",
        "ratio": ingest_rps / base_rps4 if base_rps4 else float("nan"), "ratio_label": "req/s vs baseline",
        "target": f">= {INGEST_TARGET:,} events/s", "pass": events_per_s >= INGEST_TARGET,
        "statuses": _statuses(ingest), "client_cpu_s": round(cpu_i, 1),
        "value": events_per_s, "repetitions": [round(v) for v in per_rep], "warning": warning,
        "load": load, "baseline_load": base_load, "baseline_p99_ms": pct([s.seconds for s in base4], 99) * 1000,
    })
    log(f"==> a: {results[-1]['measured']} [{load_text(load)}]; baseline {results[-1]['baseline']} "
        f"[{load_text(base_load)}]")
    log(f"    a per repetition (events/s): {', '.join(f'{v:,.0f}' for v in per_rep)}")
    if warning:
        log(warning)



def figure_b(args: argparse.Namespace, port: int, procs: int, seconds: float, baseline_path: str,
             seeded: dict[str, Any], results: list[dict[str, Any]]) -> None:
    """b. approver sessions: approve + reads, beside the baseline at the same concurrency."""
    sessions = seeded["sessions"]
    # Warm-up, not measured: the first approval in a worker process imports what the deploy task needs.
    reserved, pending = seeded["pending"][:WARMUP], seeded["pending"][WARMUP:]
    cold = warm_up(port, reserved, sessions)
    log(f"    warm-up: {len(reserved)} approvals, slowest {cold:.1f}s (the first approval in each worker)")
    # b' (think time) approves its own share: about one approval per client per 5 s.
    keep = min(len(pending) // 3, args.clients * max(2, int(2 * seconds / 4)))
    pending, later = pending[:len(pending) - keep], pending[len(pending) - keep:]
    share = [pending[i::args.clients] for i in range(args.clients)]
    csrf = secrets.token_hex(16)
    plans = [Plan("approve", port, seconds, approvals=share[i], reads=seeded["pending"],
                  headers={"Cookie": f"sessionid={sessions[i % len(sessions)]}; csrftoken={csrf}",
                           "X-CSRFToken": csrf})
             for i in range(args.clients)]
    base50, wall50, _ = run_load([Plan("health", port, seconds, path=baseline_path)
                                  for _ in range(args.clients)], procs)
    base_load = dict(LAST_LOAD)
    mixed, wall_m, cpu_m = run_load(plans, procs)
    load = dict(LAST_LOAD)
    per_rep = [len([s for s in rep if 200 <= s.status < 300]) / (wall_m / REPETITIONS)
               for rep in repetitions(mixed, wall_m)]
    warning = spread_warning("b", "req/s", per_rep)
    lat = [s.seconds for s in mixed if 200 <= s.status < 300]
    approves = [s for s in mixed if s.kind == "approve"]
    reads = [s for s in mixed if s.kind == "read"]
    base_p99 = pct([s.seconds for s in base50], 99)
    p99 = pct(lat, 99)
    results.append({
        "figure": "b", "what": f"closed loop (capacity, no think time): {args.clients} clients back to back: "
                            "approve (1) + GET promotion (4), approver sessions",
        "measured": f"p50 {pct(lat, 50) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms over {len(lat)} OK "
                    f"({len(lat) / wall_m:,.0f} req/s); approve p50/p99 "
                    f"{pct([s.seconds for s in approves], 50) * 1000:.1f}/"
                    f"{pct([s.seconds for s in approves], 99) * 1000:.1f} ms (n={len(approves)}), read "
                    f"{pct([s.seconds for s in reads], 50) * 1000:.1f}/"
                    f"{pct([s.seconds for s in reads], 99) * 1000:.1f} ms (n={len(reads)})",
        "baseline": f"p50 {pct([s.seconds for s in base50], 50) * 1000:.1f} ms, p99 {base_p99 * 1000:.1f} ms "
                    f"({len(base50) / wall50:,.0f} req/s)",
        "ratio": p99 / base_p99 if base_p99 else float("nan"), "ratio_label": "p99 vs baseline p99",
        # Capacity, no target: closed-loop latency is clients / throughput (see report()).
        "target": "none (capacity; the p99 target is judged on b')", "pass": None,
        "cold_first_approval_s": round(cold, 1),
        "statuses": _statuses(mixed), "client_cpu_s": round(cpu_m, 1),
        "value": len(lat) / wall_m, "repetitions": [round(v) for v in per_rep], "warning": warning,
        "load": load, "baseline_load": base_load,
    })
    log(f"==> b: {results[-1]['measured']} [{load_text(load)}]; baseline {results[-1]['baseline']} "
        f"[{load_text(base_load)}]")
    log(f"    b per repetition (req/s): {', '.join(f'{v:,.0f}' for v in per_rep)}")
    if warning:
        log(warning)
    if "t" in args.only:
        figure_b_think(args, port, procs, seconds, baseline_path, seeded, later, results)



THINK = (0.5, 1.5)
P99_TARGET_MS = 100.0
INGEST_TARGET = 15_000


def _p(samples: list[Sample], p: float) -> float:
    return pct([s.seconds for s in samples], p) * 1000


def figure_b_think(args: argparse.Namespace, port: int, procs: int, seconds: float, baseline_path: str,
                   seeded: dict[str, Any], pending: list[int], results: list[dict[str, Any]]) -> None:
    """b'. the same approver sessions and mix with think time: the figure the latency target is about."""
    sessions = seeded["sessions"]
    duration = 2 * seconds
    share = [pending[i::args.clients] for i in range(args.clients)]
    csrf = secrets.token_hex(16)
    plans = [Plan("approve", port, duration, approvals=share[i], reads=seeded["pending"], think=THINK,
                  headers={"Cookie": f"sessionid={sessions[i % len(sessions)]}; csrftoken={csrf}",
                           "X-CSRFToken": csrf})
             for i in range(args.clients)]
    base, wall_b, _ = run_load([Plan("health", port, duration, path=baseline_path, think=THINK)
                                for _ in range(args.clients)], procs)
    base_load = dict(LAST_LOAD)
    mixed, wall_m, cpu_m = run_load(plans, procs)
    load = dict(LAST_LOAD)
    ok = [s for s in mixed if 200 <= s.status < 300]
    per_rep = [_p([s for s in rep if 200 <= s.status < 300], 99) for rep in repetitions(mixed, wall_m)]
    warning = spread_warning("b'", "p99 (ms)", per_rep)
    approves = [s for s in ok if s.kind == "approve"]
    reads = [s for s in ok if s.kind == "read"]
    p99 = _p(ok, 99)
    base_p99 = _p(base, 99)
    offered = args.clients / ((THINK[0] + THINK[1]) / 2)
    results.append({
        "figure": "b'", "what": f"think time: {args.clients} clients, each waiting {THINK[0]}-{THINK[1]} s "
                             f"after each answer (offered ~{offered:.0f} req/s): approve (1) + GET promotion (4)",
        "measured": f"p50 {_p(ok, 50):.1f} ms, p99 {p99:.1f} ms over {len(ok)} OK ({len(ok) / wall_m:,.0f} req/s); "
                    f"approve p50/p99 {_p(approves, 50):.1f}/{_p(approves, 99):.1f} ms (n={len(approves)}), "
                    f"read p50/p99 {_p(reads, 50):.1f}/{_p(reads, 99):.1f} ms (n={len(reads)})",
        "baseline": f"/healthz with the same think time: p50 {_p(base, 50):.1f} ms, p99 {base_p99:.1f} ms "
                    f"({len(base) / wall_b:,.0f} req/s)",
        "ratio": p99 / base_p99 if base_p99 else float("nan"), "ratio_label": "p99 vs baseline p99",
        "target": f"p99 <= {P99_TARGET_MS:.0f} ms", "pass": p99 <= P99_TARGET_MS and len(ok) == len(mixed),
        "statuses": _statuses(mixed), "client_cpu_s": round(cpu_m, 1),
        "value": p99, "repetitions": [round(v, 1) for v in per_rep], "warning": warning,
        "load": load, "baseline_load": base_load, "baseline_p99_ms": base_p99,
    })
    log(f"==> b': {results[-1]['measured']} [{load_text(load)}]; baseline {results[-1]['baseline']} "
        f"[{load_text(base_load)}]")
    log(f"    b' per repetition (p99 ms): {', '.join(f'{v:,.1f}' for v in per_rep)}")
    if warning:
        log(warning)


def _statuses(samples: list[Sample]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in samples:
        key = f"{s.kind} {s.status}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


VERDICT = {True: "PASS", False: "FAIL", None: "n/a"}


def report(results: list[dict[str, Any]], info: dict[str, Any], total: float) -> str:
    lines = [
        f"API benchmark (bench/api.py), {info['date']}, {total:.0f}s in all",
        f"gunicorn gthread {info['workers']} workers x {info['threads']} threads, DEBUG off, PostgreSQL, "
        f"prepared statements: {info['prepared']}; "
        f"redis broker+cache: {info['redis']}; {info['load_procs']} load processes on the same "
        f"{info['cpus']} CPUs; {info['seconds']:.0f}s per measurement; baseline GET {info['baseline']}",
        "",
        "| # | figure | measured | baseline (same server, same concurrency) | ratio | target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['figure']} | {r['what']} | {r['measured']} [{load_text(r['load'])}] | {r['baseline']} "
                     f"[{load_text(r['baseline_load'])}] | "
                     f"{r['ratio']:.3g}x ({r['ratio_label']}) | {r['target']} | {VERDICT[r['pass']]} |")
    unit = {"a": "events/s", "b": "req/s", "b'": "p99 ms"}
    lines += ["", "per repetition (" + f"{REPETITIONS} consecutive windows of each measurement): " + "; ".join(
        f"{r['figure']} ({unit[r['figure']]}) {', '.join(f'{v:,}' for v in r['repetitions'])}" for r in results)]
    lines += [r["warning"] for r in results if r.get("warning")]
    lines += ["", "b is the closed-loop capacity figure (no think time: latency ~ clients / throughput, so its p99 "
              "cannot meet 100 ms on 2 cores, nor can /healthz's); b' (50 clients with 0.5-1.5 s think time) is "
              "the figure the p99 <= 100 ms target is judged on.",
              "", "status codes: " + "; ".join(f"{r['figure']}: {r['statuses']}" for r in results),
              f"sequencer (integrate() every 1 s in the bench process): {info['sequencer']}",
              "after a, before b, the sequencer drained a's backlog: "
              + "; ".join(f"{r['drain']['backlog']:,} entries in {r['drain']['seconds']} s "
                          f"({r['drain']['per_s']:,.0f} entries/s)" for r in results if "drain" in r),
              "warm-up (not measured), slowest first approval in a fresh worker: "
              + "; ".join(f"{r['cold_first_approval_s']} s" for r in results if "cold_first_approval_s" in r),
              "client CPU seconds (load processes): " + "; ".join(f"{r['figure']}: {r['client_cpu_s']}"
                                                                  for r in results),
              f"load average at the start: {info['load_start']}; at the end: {info['load']}", "",
              summary(results, info), ""]
    return "\n".join(lines)


def summary(results: list[dict[str, Any]], info: dict[str, Any]) -> str:
    """The run's verdict in one line: b' p99 and ingest against their targets, /healthz, the load."""
    by = {r["figure"]: r for r in results}
    parts = []
    if "b'" in by:
        r = by["b'"]
        parts.append(f"b\u2032 p99 {r['value']:.1f} ms (target \u2264 {P99_TARGET_MS:.0f}) {VERDICT[r['pass']]}")
    if "a" in by:
        r = by["a"]
        parts.append(f"ingest {r['value']:,.0f} events/s (target \u2265 {INGEST_TARGET:,}) {VERDICT[r['pass']]}")
    if "b'" in by:
        base_p99 = by["b'"]["baseline_p99_ms"]
        parts.append(f"/healthz p99 {base_p99:.1f} ms")
    one, five, fifteen = info["load"]
    parts.append(f"load {one:.2f} {five:.2f} {fifteen:.2f}")
    warned = sum(1 for r in results if r.get("warning"))
    if warned:
        parts.append(f"{warned} WARNING(s): repetitions vary by more than {SPREAD:.0%}")
    return "SUMMARY: " + "; ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
