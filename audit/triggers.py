"""Database triggers that make the ledger tables append-only.

On PostgreSQL and SQLite, UPDATE and DELETE (and TRUNCATE on PostgreSQL) of the
ledger tables are refused by the database itself, whoever the client is. The
intake queue may only lose rows that the sequencer has already integrated.
A database owner can still disable triggers; that is what ``verify_ledger`` and
signed checkpoints are for.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection as default_connection
from django.db.backends.base.base import BaseDatabaseWrapper

APPEND_ONLY_TABLES = ("audit_entry", "audit_merklenode", "audit_checkpoint", "audit_signingkey")
# Append-only tables added after migration 0002 (which installs the triggers of the ones above):
# their own migration installs theirs with ``install_tables``.
LATER_APPEND_ONLY_TABLES = ("audit_witnesscosignature",)
PENDING_TABLE = "audit_pendingentry"
_MESSAGE = "the audit ledger is append-only"
_INTEGRATED = (
    "EXISTS (SELECT 1 FROM audit_entry WHERE audit_entry.pending_id = OLD.id"
    " OR (OLD.idempotency_key IS NOT NULL AND audit_entry.idempotency_key = OLD.idempotency_key))"
)


def _postgres_functions() -> list[str]:
    return [
        f"""
        CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger AS $$
        BEGIN
            RAISE EXCEPTION '{_MESSAGE}: % on % is refused', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'restrict_violation';
        END;
        $$ LANGUAGE plpgsql;
        """,
        f"""
        CREATE OR REPLACE FUNCTION audit_pending_guard() RETURNS trigger AS $$
        BEGIN
            IF TG_OP = 'DELETE' AND {_INTEGRATED} THEN
                RETURN OLD;
            END IF;
            RAISE EXCEPTION '{_MESSAGE}: % of a pending entry that is not integrated is refused', TG_OP
                USING ERRCODE = 'restrict_violation';
        END;
        $$ LANGUAGE plpgsql;
        """,
    ]


def _postgres_table_sql(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();",
    ]


def _sqlite_table_sql(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}: {op} on {table} is refused'); END;"
        for op in ("UPDATE", "DELETE")
    ]


def _existing(connection: BaseDatabaseWrapper, tables: tuple[str, ...]) -> list[str]:
    present = set(connection.introspection.table_names())
    return [t for t in tables if t in present]


def _postgres_sql(connection: BaseDatabaseWrapper) -> list[str]:
    sql = _postgres_functions()
    for table in (*APPEND_ONLY_TABLES, *_existing(connection, LATER_APPEND_ONLY_TABLES)):
        sql += _postgres_table_sql(table)
    sql += [
        f"CREATE TRIGGER {PENDING_TABLE}_guard BEFORE UPDATE OR DELETE ON {PENDING_TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION audit_pending_guard();",
        f"CREATE TRIGGER {PENDING_TABLE}_no_truncate BEFORE TRUNCATE ON {PENDING_TABLE} "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();",
    ]
    return sql


def _sqlite_sql(connection: BaseDatabaseWrapper) -> list[str]:
    sql = []
    for table in (*APPEND_ONLY_TABLES, *_existing(connection, LATER_APPEND_ONLY_TABLES)):
        sql += _sqlite_table_sql(table)
    sql += [
        f"CREATE TRIGGER {PENDING_TABLE}_no_update BEFORE UPDATE ON {PENDING_TABLE} "
        f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}: UPDATE on {PENDING_TABLE} is refused'); END;",
        f"CREATE TRIGGER {PENDING_TABLE}_no_delete BEFORE DELETE ON {PENDING_TABLE} WHEN NOT {_INTEGRATED} "
        f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}: DELETE of a pending entry that is not integrated is refused'); END;",
    ]
    return sql


def _sqlite_trigger_names() -> list[str]:
    tables = (*APPEND_ONLY_TABLES, *LATER_APPEND_ONLY_TABLES)
    names = [f"{t}_no_{op}" for t in tables for op in ("update", "delete")]
    return [*names, f"{PENDING_TABLE}_no_update", f"{PENDING_TABLE}_no_delete"]


def install(connection: BaseDatabaseWrapper = default_connection) -> None:
    """Install every trigger (of the later tables too, once their migration has created them)."""
    statements = _postgres_sql(connection) if connection.vendor == "postgresql" else _sqlite_sql(connection)
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def install_tables(connection: BaseDatabaseWrapper, tables: tuple[str, ...]) -> None:
    """Make ``tables`` append-only (a later migration's new evidence tables)."""
    if connection.vendor == "postgresql":
        statements = _postgres_functions() + [s for t in tables for s in _postgres_table_sql(t)]
    else:
        statements = [s for t in tables for s in _sqlite_table_sql(t)]
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def uninstall(connection: BaseDatabaseWrapper = default_connection) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for table in (*APPEND_ONLY_TABLES, *_existing(connection, LATER_APPEND_ONLY_TABLES)):
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            cursor.execute(f"DROP TRIGGER IF EXISTS {PENDING_TABLE}_guard ON {PENDING_TABLE}")
            cursor.execute(f"DROP TRIGGER IF EXISTS {PENDING_TABLE}_no_truncate ON {PENDING_TABLE}")
            cursor.execute("DROP FUNCTION IF EXISTS audit_refuse_change()")
            cursor.execute("DROP FUNCTION IF EXISTS audit_pending_guard()")
        else:
            for name in _sqlite_trigger_names():
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}")


@contextmanager
def disabled(connection: BaseDatabaseWrapper = default_connection) -> Iterator[None]:
    """Switch the triggers off, as a database owner could. For tests and tamper drills only."""
    tables = (*APPEND_ONLY_TABLES, *_existing(connection, LATER_APPEND_ONLY_TABLES), PENDING_TABLE)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in tables:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                for table in tables:
                    cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    else:
        uninstall(connection)
        try:
            yield
        finally:
            install(connection)
