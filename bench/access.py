#!/usr/bin/env python
"""Benchmark of the access check (``access.services.checks.check``) over 100,000 grants, against plain indexed lookups.

    .venv/bin/python bench/access.py                    # SQLite: var/bench_access.sqlite3 (re-created)
    DATABASE_URL=postgres://root@127.0.0.1:5432/bench_access .venv/bin/python bench/access.py

On PostgreSQL the database named in DATABASE_URL is DROPPED and re-created (its name
must contain "bench", or pass --force). The SQLite file is deleted and re-created.

Set-up (bulk_create, not timed): users, groups (each user in a few), datasets, and
``--grants`` grants spread over them: 80% to users, 20% to groups; 85% active, 10%
lapsed (past ``expires_at``, not yet closed by the expiry task), 5% revoked; the
guardian rows of the active grants too (for the informational guardian figure).

Measured, per sample, in rotating order so drift hits every figure alike:

* ``check``: ``access.services.checks.check(user, permission, dataset, record_denial=False)``,
  the real hot path (one query on ``grant_check_user`` and, when that finds nothing,
  one on ``grant_check_group`` with the user's groups as a subquery);
* baseline ``orm``: ``Grant.objects.filter(user_id=.., resource_type=.., resource_id=..,
  permission=.., revoked_at__isnull=True, expires_at__gt=now).exists()``: the same
  index, one query, no group fallback;
* baseline ``raw``: the same lookup as one raw SQL statement on a Django cursor;
* ``guardian`` (information only): ``ObjectPermissionChecker(user).has_perm`` on guardian's
  direct foreign-key tables;
* ``one_sql`` (information only): a possible fast path for ``check`` — the user's and their
  groups' grants in one raw statement (``UNION ALL`` over both partial indexes, ``LIMIT 1``).

Samples: 50% allowed by the user's own grant, 25% allowed only through a group, 25%
denied (a random user, dataset and permission with no active grant, lapsed and revoked
grants included). Prints p50/p99 of each, ratios check/baseline, and PASS/FAIL against
the target p99 <= 2 ms for ``check``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["LEDGER_INTEGRATE_ON_COMMIT"] = "0"

TARGET_P99_MS = 2.0
PERMISSIONS = ("view_metadata", "read_data", "train_on")
LEVELS = ("public", "internal", "confidential", "restricted")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    s = sorted(values)
    if not s:
        return float("nan")
    return s[max(1, math.ceil(p / 100 * len(s))) - 1]


# --- database (before Django) ---------------------------------------------------------------------------


def prepare_database(force: bool) -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        path = ROOT / "var" / "bench_access.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
        return f"SQLite {path.relative_to(ROOT)}"
    import dj_database_url

    cfg = dj_database_url.parse(url)
    if cfg["ENGINE"] != "django.db.backends.postgresql":
        sys.exit("DATABASE_URL must be PostgreSQL (or unset for SQLite)")
    name = cfg["NAME"]
    if "bench" not in name and not force:
        sys.exit(f"refusing to drop database {name!r}: its name does not contain 'bench' (use --force)")
    import psycopg
    from psycopg import sql

    info = {k: cfg.get(v) or None for k, v in (("host", "HOST"), ("port", "PORT"), ("user", "USER"),
                                               ("password", "PASSWORD"))}
    last: Exception | None = None
    for maintenance in ("postgres", "test", "template1"):
        try:
            admin = psycopg.connect(dbname=maintenance, autocommit=True, **info)
        except psycopg.OperationalError as exc:
            last = exc
            continue
        with admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return f"PostgreSQL {name}"
    sys.exit(f"cannot reach a maintenance database to re-create {name}: {last}")


# --- data ---------------------------------------------------------------------------------------------------


def build(args: argparse.Namespace, rng: random.Random) -> dict[str, Any]:
    from django.contrib.auth.models import Group, Permission, User
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection, transaction
    from django.utils import timezone

    from access.models import Dataset, DatasetGroupObjectPermission, DatasetUserObjectPermission, Grant

    t0 = time.perf_counter()
    now = timezone.now()
    with transaction.atomic():
        owner = User.objects.create(username="bench-owner")
        User.objects.bulk_create([User(username=f"u{i}") for i in range(args.users)], batch_size=5000)
        Group.objects.bulk_create([Group(name=f"team-{i}") for i in range(args.groups)], batch_size=5000)
        users = list(User.objects.exclude(pk=owner.pk).values_list("pk", flat=True))
        groups = list(Group.objects.filter(name__startswith="team-").values_list("pk", flat=True))
        membership = User.groups.through
        member_rows = []
        groups_of: dict[int, list[int]] = {}
        for u in users:
            mine = rng.sample(groups, k=args.groups_per_user)
            groups_of[u] = mine
            member_rows += [membership(user_id=u, group_id=g) for g in mine]
        membership.objects.bulk_create(member_rows, batch_size=10000)
        Dataset.objects.bulk_create(
            [Dataset(name=f"ds-{i}", owner=owner, level=(lv := rng.choice(LEVELS)), effective_level=lv)
             for i in range(args.datasets)], batch_size=5000,
        )
        datasets = list(Dataset.objects.values_list("pk", flat=True))

        grants: list[Grant] = []
        active_user: list[tuple[int, int, str]] = []
        active_group: list[tuple[int, int, str]] = []
        for _ in range(args.grants):
            to_group = rng.random() < 0.2
            principal = rng.choice(groups) if to_group else rng.choice(users)
            dataset, permission = rng.choice(datasets), rng.choice(PERMISSIONS)
            kind = rng.random()
            if kind < 0.85:
                expires, revoked = now + timedelta(days=rng.randint(1, 90)), None
            elif kind < 0.95:
                expires, revoked = now - timedelta(seconds=rng.randint(1, 3600)), None  # lapsed
            else:
                expires, revoked = now + timedelta(days=30), now - timedelta(days=1)
            grants.append(Grant(
                user_id=None if to_group else principal, group_id=principal if to_group else None,
                resource_type="dataset", resource_id=dataset, permission=permission, expires_at=expires,
                justification="bench", granted_by=owner, revoked_at=revoked,
                revoke_reason="bench" if revoked else "",
            ))
            if kind < 0.85:
                (active_group if to_group else active_user).append((principal, dataset, permission))
        Grant.objects.bulk_create(grants, batch_size=5000)

        ct = ContentType.objects.get_for_model(Dataset)
        perms = {p.codename: p.pk for p in Permission.objects.filter(content_type=ct, codename__in=PERMISSIONS)}
        DatasetUserObjectPermission.objects.bulk_create(
            [DatasetUserObjectPermission(user_id=u, content_object_id=d, permission_id=perms[p])
             for u, d, p in set(active_user)], batch_size=10000, ignore_conflicts=True,
        )
        DatasetGroupObjectPermission.objects.bulk_create(
            [DatasetGroupObjectPermission(group_id=g, content_object_id=d, permission_id=perms[p])
             for g, d, p in set(active_group)], batch_size=10000, ignore_conflicts=True,
        )
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    log(f"built {args.grants:,} grants, {args.users:,} users, {args.groups:,} groups, {args.datasets:,} datasets "
        f"in {time.perf_counter() - t0:.1f}s")
    return {"users": users, "groups_of": groups_of, "datasets": datasets, "active_user": active_user,
            "active_group": active_group, "now": now}


def samples(data: dict[str, Any], n: int, rng: random.Random) -> list[tuple[str, int, int, str]]:
    """(expected, user_id, dataset_id, permission) tuples: half own grants, a quarter via groups, a quarter denied."""
    from django.utils import timezone

    from access.models import Grant

    active_user = set(data["active_user"])
    by_group: dict[int, list[tuple[int, str]]] = {}
    for g, d, p in data["active_group"]:
        by_group.setdefault(g, []).append((d, p))
    members: dict[int, list[int]] = {}
    for u, gs in data["groups_of"].items():
        for g in gs:
            members.setdefault(g, []).append(u)
    out: list[tuple[str, int, int, str]] = []
    user_grants = list(active_user)
    groups_with = list(by_group)
    while len(out) < n:
        r = rng.random()
        if r < 0.5:
            u, d, p = rng.choice(user_grants)
            out.append(("allowed", u, d, p))
        elif r < 0.75:
            g = rng.choice(groups_with)
            d, p = rng.choice(by_group[g])
            u = rng.choice(members[g])
            if (u, d, p) in active_user:
                continue
            out.append(("group", u, d, p))
        else:
            u, d, p = rng.choice(data["users"]), rng.choice(data["datasets"]), rng.choice(PERMISSIONS)
            out.append(("denied?", u, d, p))
    # settle the random ones against the truth (a random pick may happen to be granted)
    now = timezone.now()
    settled = []
    for kind, u, d, p in out:
        if kind == "denied?":
            grants = Grant.objects.filter(resource_type="dataset", resource_id=d, permission=p,
                                          revoked_at__isnull=True, expires_at__gt=now)
            if grants.filter(user_id=u).exists():
                kind = "allowed"
            elif grants.filter(group__user__id=u).exists():
                kind = "group"
            else:
                kind = "denied"
        settled.append((kind, u, d, p))
    return settled


# --- measuring ----------------------------------------------------------------------------------------------


def measure(args: argparse.Namespace, data: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.utils import timezone
    from guardian.core import ObjectPermissionChecker

    from access.models import Dataset, Grant
    from access.services.checks import check

    todo = samples(data, args.checks + args.warmup, rng)
    users = User.objects.in_bulk({u for _, u, _, _ in todo})
    datasets = Dataset.objects.in_bulk({d for _, _, d, _ in todo})
    table = Grant._meta.db_table
    raw_sql = (
        f"SELECT 1 FROM {table} WHERE user_id = %s AND resource_type = %s AND resource_id = %s "
        f"AND permission = %s AND revoked_at IS NULL AND expires_at > %s LIMIT 1"
    )

    group_table = User.groups.through._meta.db_table
    # The proposed fast path for check() (see the final report): one statement, both partial indexes.
    one_sql = (
        f"SELECT id FROM (SELECT id FROM {table} WHERE user_id = %s AND resource_type = %s AND resource_id = %s "
        f"AND permission = %s AND revoked_at IS NULL AND expires_at > %s "
        f"UNION ALL SELECT g.id FROM {table} g JOIN {group_table} ug ON ug.group_id = g.group_id "
        f"WHERE ug.user_id = %s AND g.resource_type = %s AND g.resource_id = %s AND g.permission = %s "
        f"AND g.revoked_at IS NULL AND g.expires_at > %s) AS found LIMIT 1"
    )
    adapt = connection.ops.adapt_datetimefield_value

    def run_check(u: int, d: int, p: str) -> bool:
        return bool(check(users[u], p, datasets[d], record_denial=False))

    def run_orm(u: int, d: int, p: str) -> bool:
        return Grant.objects.filter(
            user_id=u, resource_type="dataset", resource_id=d, permission=p, revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        ).exists()

    def run_raw(u: int, d: int, p: str) -> bool:
        with connection.cursor() as cur:
            cur.execute(raw_sql, [u, "dataset", d, p, adapt(timezone.now())])
            return cur.fetchone() is not None

    def run_one_sql(u: int, d: int, p: str) -> bool:
        user = users[u]
        if not user.is_active:
            return False
        now = adapt(timezone.now())
        with connection.cursor() as cur:
            cur.execute(one_sql, [u, "dataset", d, p, now, u, "dataset", d, p, now])
            return cur.fetchone() is not None

    def run_guardian(u: int, d: int, p: str) -> bool:
        return ObjectPermissionChecker(users[u]).has_perm(p, datasets[d])

    runners = {"check": run_check, "orm": run_orm, "raw": run_raw, "guardian": run_guardian,
               "one_sql": run_one_sql}
    times: dict[str, list[float]] = {k: [] for k in runners}
    by_kind: dict[str, dict[str, list[float]]] = {}
    wrong: dict[str, int] = dict.fromkeys(runners, 0)
    order = list(runners)
    perf = time.perf_counter_ns
    for i, (kind, u, d, p) in enumerate(todo):
        rng.shuffle(order)
        for name in order:
            t = perf()
            result = runners[name](u, d, p)
            elapsed = (perf() - t) / 1e6
            if i < args.warmup:
                continue
            times[name].append(elapsed)
            by_kind.setdefault(name, {}).setdefault(kind, []).append(elapsed)
            expected = kind != "denied" if name in ("check", "guardian", "one_sql") else kind == "allowed"
            # the baselines look only at the user's own grants: a group grant is a miss for them by design
            if name in ("orm", "raw") and kind == "group":
                expected = False
            if result != expected:
                wrong[name] += 1
    kinds = {k: sum(1 for s in todo[args.warmup:] if s[0] == k) for k in ("allowed", "group", "denied")}
    return {"times": times, "by_kind": by_kind, "wrong": wrong, "kinds": kinds}


def explain() -> str:
    from django.utils import timezone

    from access.models import Grant

    qs = Grant.objects.filter(user_id=1, resource_type="dataset", resource_id=1, permission="read_data",
                              revoked_at__isnull=True, expires_at__gt=timezone.now())
    return qs.explain()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grants", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--groups", type=int, default=300)
    parser.add_argument("--groups-per-user", type=int, default=3)
    parser.add_argument("--datasets", type=int, default=2_000)
    parser.add_argument("--checks", type=int, default=4_000, help="measured samples (after --warmup)")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--seed", type=int, default=20251129)
    parser.add_argument("--force", action="store_true", help="allow dropping a database whose name lacks 'bench'")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args()
    rng = random.Random(args.seed)

    where = prepare_database(args.force)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    settings.DEBUG = False  # no query-logging cursor wrapper (the production setting)
    log(f"database: {where}")
    t0 = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    log(f"migrated in {time.perf_counter() - t0:.1f}s")
    data = build(args, rng)
    log("plan of the baseline lookup: " + " | ".join(explain().splitlines()))
    result = measure(args, data, rng)

    times = result["times"]
    figures: dict[str, Any] = {
        "database": connection.vendor, "where": where, "grants": args.grants, "checks": len(times["check"]),
        "samples": result["kinds"], "wrong_answers": result["wrong"],
        "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
    }
    print()
    print(f"{'':10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'mean ms':>8}")
    for name in ("check", "orm", "raw", "guardian", "one_sql"):
        values = times[name]
        row = {"p50": pct(values, 50), "p90": pct(values, 90), "p99": pct(values, 99), "max": max(values),
               "mean": statistics.fmean(values)}
        figures[name] = row
        print(f"{name:10} {row['p50']:8.3f} {row['p90']:8.3f} {row['p99']:8.3f} {row['max']:8.3f} {row['mean']:8.3f}")
    print()
    for kind in ("allowed", "group", "denied"):
        values = result["by_kind"]["check"].get(kind, [])
        if values:
            figures[f"check_{kind}"] = {"p50": pct(values, 50), "p99": pct(values, 99), "n": len(values)}
            print(f"check, {kind:8} (n={len(values):5}): p50 {pct(values, 50):.3f} ms, p99 {pct(values, 99):.3f} ms")
    ratios = {
        "check/orm p50": figures["check"]["p50"] / figures["orm"]["p50"],
        "check/orm p99": figures["check"]["p99"] / figures["orm"]["p99"],
        "check/raw p50": figures["check"]["p50"] / figures["raw"]["p50"],
        "check/raw p99": figures["check"]["p99"] / figures["raw"]["p99"],
    }
    figures["ratios"] = ratios
    print()
    for label, value in ratios.items():
        print(f"ratio {label}: {value:.2f}x")
    passed = figures["check"]["p99"] <= TARGET_P99_MS
    figures["target"] = f"check p99 <= {TARGET_P99_MS} ms"
    figures["passed"] = passed
    print(f"\n==> access check p99 {figures['check']['p99']:.3f} ms (target <= {TARGET_P99_MS} ms): "
          f"{'PASS' if passed else 'FAIL'}")
    if any(result["wrong"].values()):
        print(f"!!! wrong answers: {result['wrong']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 0 if passed and not result["wrong"]["check"] else 1


if __name__ == "__main__":
    sys.exit(main())
