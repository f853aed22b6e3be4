"""Container entrypoint: turn ``<NAME>_FILE`` secret mounts into ``<NAME>`` variables, then exec the command.

The settings read secrets from environment variables; orchestrators hand them over
as files (Docker/Kubernetes secrets). For every variable ``X_FILE`` naming a
readable file, ``X`` is set to the file's content (trailing newline removed) unless
``X`` is already set. The values never appear in the image, ``docker inspect`` or logs.
"""
from __future__ import annotations

import os
import sys

SUFFIX = "_FILE"
# Only these may come from files (a typo must not silently read an arbitrary file into the environment).
ALLOWED = {"SECRET_KEY", "DATABASE_URL", "LEDGER_PII_KEK", "LEDGER_PII_KEK_PREVIOUS", "MLFLOW_WEBHOOK_SECRET",
           "METRICS_TOKEN", "CACHE_URL", "CELERY_BROKER_URL"}


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("entrypoint: no command given")
    for key in [k for k in os.environ if k.endswith(SUFFIX)]:
        name = key[: -len(SUFFIX)]
        if name not in ALLOWED:
            continue
        if os.environ.get(name):
            sys.exit(f"entrypoint: both {name} and {key} are set; use one")
        path = os.environ[key]
        try:
            with open(path, encoding="utf-8") as fh:
                os.environ[name] = fh.read().rstrip("\r\n")
        except OSError as exc:
            sys.exit(f"entrypoint: cannot read {key} ({exc.strerror})")
    os.execvp(argv[0], argv)  # noqa: S606


if __name__ == "__main__":
    main(sys.argv[1:])
