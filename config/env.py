"""Typed helpers that read settings from the environment and fail loudly.

A misspelt boolean or a non-numeric interval must stop the process at start-up
rather than silently fall back to a default that weakens the ledger.
"""
from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None else value


def env_secret(name: str) -> str | None:
    """``NAME``, else the content of the file ``NAME_FILE`` names (trailing newline removed), else None.

    The container entrypoint (docker/entrypoint.py) normally turns ``NAME_FILE`` into ``NAME`` before
    the process starts; this covers what it cannot wrap (``docker compose exec`` bypasses the
    entrypoint). Both set, or a file that cannot be read, stops the process with a message naming
    the variable and the file, never the value.
    """
    value = os.environ.get(name)
    path = os.environ.get(f"{name}_FILE")
    if path is None or path == "":
        return value
    if value:
        raise ImproperlyConfigured(f"both {name} and {name}_FILE are set; use one")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().rstrip("\r\n")
    except PermissionError:
        raise ImproperlyConfigured(
            f"{name}_FILE: cannot read {path} as uid {os.geteuid()} (permission denied). Secret files are "
            "mounted owner root:root mode 0600 and read by the entrypoint as root: run commands through it "
            "(docker compose exec web manage ...; docs/deploy.md)"
        ) from None
    except OSError as exc:
        raise ImproperlyConfigured(f"{name}_FILE: cannot read {path} ({exc.strerror})") from None


def env_required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ImproperlyConfigured(f"environment variable {name} is required")
    return value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        parsed = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if minimum is not None and parsed < minimum:
        raise ImproperlyConfigured(f"{name}={parsed} is below the minimum {minimum}")
    return parsed


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        parsed = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number") from None
    if minimum is not None and parsed < minimum:
        raise ImproperlyConfigured(f"{name}={parsed} is below the minimum {minimum}")
    return parsed


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_pair(name: str) -> tuple[str, str] | None:
    """``"A,B"`` as ``("A", "B")``; unset or empty is ``None``; anything but two non-empty items stops the process."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    parts = [item.strip() for item in value.split(",")]
    if len(parts) != 2 or not all(parts):
        raise ImproperlyConfigured(f"{name}={value!r} must be two comma-separated values, e.g. HEADER,value")
    return parts[0], parts[1]

def env_json(name: str, default: object) -> object:
    """A JSON document from the environment (``default`` when unset or empty); malformed JSON stops start-up."""
    import json

    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return json.loads(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON: {exc}") from None
