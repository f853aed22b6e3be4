"""Management commands start fast: nothing heavy is imported until a command needs it.

MLflow alone costs 1-2 s to import; a command that only reads the ledger (``verify_ledger``,
``ledger_keys``) must not pay it. This loads every command of the project in a fresh process,
builds its argument parser (what ``manage.py <command> --help`` does), and checks which heavy
packages that pulled in. The time itself is measured by bench/startup.py, not here.
"""
from __future__ import annotations

import json
import subprocess
import sys

from tests.settings_helpers import ROOT

# Packages a command's start-up must not import: each costs hundreds of milliseconds or more.
HEAVY = ("mlflow", "pandas", "sqlalchemy", "alembic", "pyarrow", "playwright")

PROBE = f"""
import json, sys
import django
django.setup()
from django.core.management import get_commands, load_command_class
apps = {{"audit", "access", "governance", "web"}}
ours = {{name: app for name, app in get_commands().items() if app.split(".")[0] in apps}}
for name, app in sorted(ours.items()):
    load_command_class(app, name).create_parser("manage.py", name)
print(json.dumps({{"commands": sorted(ours), "heavy": sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})}}))
"""


def test_loading_every_command_imports_nothing_heavy() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings",
                                 "VAR_DIR": str(ROOT / "var")})
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    # The probe saw the project's commands (a probe that loads none would pass vacuously).
    assert {"verify_ledger", "export_audit", "seed_demo", "reconcile_mlflow"} <= set(found["commands"])
    assert found["heavy"] == [], f"imported at command start-up: {found['heavy'][:10]}"
