"""Start-up time of the management commands, against the bare Django start-up measured in the same run.

    .venv/bin/python bench/startup.py [--runs 5]

For each command of the project, the median wall time of ``manage.py <command> --help`` (start,
settings, apps, the command's imports, its parser) over ``--runs`` runs, next to the baseline
``python -c "import django; django.setup()"`` with the same settings. Target (#17): every command
answers in under 2 s on an idle 2-core machine; the ratio shows what the command adds to Django's own start.
Exit 1 when a command misses the target.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 2.0
COMMANDS = ["verify_ledger", "checkpoint", "ledger_keys", "export_audit", "retention_run", "rotate_pii_kek",
            "rotate_signing_key", "erase_data_subject", "event_catalogue",
            "reconcile_mlflow", "seed_demo", "close_account", "create_first_admin", "mlflow_webhook_register"]


def timed(cmd: list[str], runs: int) -> float:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings")
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    py = sys.executable
    baseline = timed([py, "-c", "import django; django.setup()"], args.runs)
    print(f"baseline: django.setup() {baseline:.2f} s (median of {args.runs})")
    print(f"{'command':<26}{'seconds':>9}{'x baseline':>12}  target < {TARGET_SECONDS:.0f} s")
    failed = 0
    for name in COMMANDS:
        seconds = timed([py, "manage.py", name, "--help"], args.runs)
        ok = seconds < TARGET_SECONDS
        failed += not ok
        print(f"{name:<26}{seconds:>9.2f}{seconds / baseline:>12.2f}  {'PASS' if ok else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
