"""Shared fixtures, and the fixture modules of the whole suite (``pytest_plugins``).

Fixtures come from conftest.py files and the plugins below, never from imports:

- tests/personas.py: the people (who each is and what they may see and do), one fixture each and ``people``;
- tests/catalog.py: the catalogue the access tests work on (``res``, ``service_account``);
- tests/promotions.py: environments, fraud-detector's versions, a fake MLflow registry, eager Celery;
- tests/clients.py: API clients (``as_user``, ``token_for``);
- tests/exports.py: where exports go, the ``export_audit`` command, a signing key of the test's own;
- tests/witnesses.py: real witness processes (``witness_factory``);
- tests/mlflow_registry.py: a real MLflow registry on a temporary SQLite file (``mlflow_store``);
- tests/identity_provider.py: a real OpenID provider (tests/idp, Node's oidc-provider) with the
  personas as its people (``oidc_provider``).

Plain helper functions live in helper modules (tests/<dir>/helpers.py) that tests import.

``committing_db`` gives a test real commits (no wrapping transaction), for
on_commit hooks, several connections and threads; afterwards it empties the
database with the ledger triggers switched off, as only a database owner can.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from audit import triggers
from audit.models import LedgerHead

pytest_plugins = [
    "tests.personas",
    "tests.catalog",
    "tests.promotions",
    "tests.clients",
    "tests.exports",
    "tests.witnesses",
    "tests.mlflow_registry",
    "tests.identity_provider",
]


def _reset_database() -> None:
    with triggers.disabled(connection):
        call_command("flush", interactive=False, verbosity=0)
    # flush removed the data migrations' rows; put back what the app relies on, with
    # the migrations' own code so the two never drift apart.
    LedgerHead.objects.get_or_create(pk=1)
    importlib.import_module("access.migrations.0001_roles").create_roles(apps, None)
    importlib.import_module("governance.migrations.0002_default_environments").forwards(apps, None)
    # Production is protected from the start (two-person control over its rules); a test after a
    # committing one must not find it unprotected.
    importlib.import_module("governance.migrations.0007_environment_protected_and_change_requests") \
        .protect_production(apps, None)


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment: None, django_db_modify_db_settings: None,
                    django_db_blocker: Any) -> Iterator[None]:
    """Always create the test database: ``committing_db`` tests need it without a django_db mark.

    ``django_db_modify_db_settings`` gives each pytest-xdist worker its own PostgreSQL test database
    (``<TEST NAME>_gw0``, ...); SQLite's test database is in memory, one per worker process anyway."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, aliases={"default"})
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=0)


@pytest.fixture
def committing_db(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    with django_db_blocker.unblock():
        try:
            yield
        finally:
            connection.close_if_unusable_or_obsolete()
            _reset_database()


@pytest.fixture
def on_postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")


@pytest.fixture(autouse=True)
def _integrate_synchronously(settings: pytest.FixtureRequest) -> None:
    # Tests decide explicitly when the sequencer runs, unless they opt back in.
    settings.LEDGER_INTEGRATE_ON_COMMIT = False  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _no_registry_to_refresh_evidence_from(settings: pytest.FixtureRequest) -> None:
    # Approving and deploying re-read a version's evidence from MLflow (MLFLOW_EVIDENCE_REFRESH). Most tests
    # build versions with factories and have no registry; the real-registry fixture (``mlflow_store``, in
    # tests/mlflow_registry.py) turns it back on, and the tests of the refresh use it.
    settings.MLFLOW_EVIDENCE_REFRESH = False  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _celery_app_stays_the_projects() -> Iterator[None]:
    # A test that builds ``Celery(...)`` without ``set_as_current=False`` makes it the current app for
    # the rest of the process: every later ``.delay()`` then goes to that app's broker instead of
    # running eagerly, and an unrelated test fails far away (the demo did, after the worker tests).
    yield
    from celery import current_app

    from config.celery import app

    assert current_app._get_current_object() is app, "a test replaced the current Celery app"


def pytest_report_header() -> str:
    return f"database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}"


# The slowest modules (seconds of test time in one run, measured with --durations=0): run first, so that
# pytest-xdist hands them out while the quick tests can still fill the other worker, instead of one
# worker finishing a 30 s test alone at the end. Only the order changes; every test still runs.
SLOW_FIRST = (
    "tests/browser/test_a11y.py",  # 72 s: axe-core on every page for each persona
    "tests/test_dev_demo.py",  # 43 s: the README's demo command, twice, in a process of its own
    "tests/audit/pii/test_no_personal_data_in_hashed_bodies.py",  # 20 s: the whole demo story, then every body
    "tests/governance/test_artifact_store_digest.py",  # 21 s: a real `mlflow server`
    "tests/api/test_schemathesis.py",  # 18 s
    "tests/audit/export/test_bundle.py",  # 14 s
    "tests/audit/witness/test_server.py",  # 10 s: real witness processes
    "tests/admin/test_admin_access.py",  # 10 s
)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {path: n for n, path in enumerate(SLOW_FIRST)}

    def key(item: pytest.Item) -> int:
        return rank.get(item.nodeid.split("::", 1)[0], len(SLOW_FIRST))

    items.sort(key=key)  # stable: within a module and among the rest, the collection order stays
