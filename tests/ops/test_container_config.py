"""Pieces of the container configuration that need no container: *_FILE in the settings, the per-tick log
filter, which processes use the Prometheus multiprocess directory. The whole is run as compose runs it in
tests/ops/test_compose_emulation.py."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.celery import _serves_metrics
from config.env import env_secret
from web.logging import PeriodicTaskNoiseFilter


def test_env_secret_reads_the_file_and_refuses_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret-value\n")
    monkeypatch.delenv("SOME_TOKEN", raising=False)
    monkeypatch.setenv("SOME_TOKEN_FILE", str(secret))
    assert env_secret("SOME_TOKEN") == "s3cret-value"
    monkeypatch.setenv("SOME_TOKEN", "other")
    with pytest.raises(ImproperlyConfigured, match="both SOME_TOKEN and SOME_TOKEN_FILE"):
        env_secret("SOME_TOKEN")
    monkeypatch.delenv("SOME_TOKEN")
    monkeypatch.setenv("SOME_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="SOME_TOKEN_FILE: cannot read") as refused:
        env_secret("SOME_TOKEN")
    assert "s3cret" not in str(refused.value)


def _record(logger: str, msg: str, args: object) -> logging.LogRecord:
    return logging.LogRecord(logger, logging.INFO, __file__, 1, msg, args, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("logger", "msg", "args", "kept"), [
    ("celery.beat", "Scheduler: Sending due task %s (%s)", ("ledger-integrate", "audit.tasks.integrate_pending"),
     False),
    ("celery.worker.strategy", "Task %(name)s[%(id)s] received", {"name": "audit.tasks.integrate_pending", "id": "1"},
     False),
    ("celery.app.trace", "Task %(name)s[%(id)s] succeeded", {"name": "audit.tasks.make_checkpoint", "id": "1"}, False),
    ("celery.worker.request", "Discarding revoked task: %s[%s]", ("audit.tasks.integrate_pending", "1"), False),
    # a task beat runs nightly, and another logger, keep INFO
    ("celery.beat", "Scheduler: Sending due task %s (%s)", ("ledger-verify-full", "audit.tasks.verify_full"), True),
    ("audit.tasks", "integrated %s", ("audit.tasks.integrate_pending",), True),
])
def test_per_tick_lines_go_to_debug(logger: str, msg: str, args: object, kept: bool) -> None:
    logging.getLogger(logger).setLevel(logging.INFO)
    try:
        record = _record(logger, msg, args)
        assert PeriodicTaskNoiseFilter().filter(record) is kept
        assert record.levelno == (logging.INFO if kept else logging.DEBUG)
        logging.getLogger(logger).setLevel(logging.DEBUG)  # at DEBUG the demoted line is still written
        assert PeriodicTaskNoiseFilter().filter(_record(logger, msg, args)) is True
    finally:
        logging.getLogger(logger).setLevel(logging.NOTSET)


@pytest.mark.parametrize(("argv", "serves"), [
    (["/opt/venv/bin/gunicorn", "--config", "/app/gunicorn.conf.py"], True),
    (["/opt/venv/bin/celery", "-A", "config", "worker", "--loglevel=INFO"], True),
    (["/opt/venv/bin/celery", "-A", "config", "inspect", "ping"], False),
    (["/opt/venv/bin/celery", "-A", "config", "beat"], False),
    (["manage.py", "verify_ledger"], False),
    ([], False),
])
def test_only_servers_keep_the_prometheus_directory(argv: list[str], serves: bool) -> None:
    assert _serves_metrics(argv) is serves
