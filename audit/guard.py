"""The database half of the append-only guarantee: triggers that refuse UPDATE and DELETE.

The ORM guard in `audit.models` stops honest mistakes in Python; these triggers stop everything
that reaches the database another way (raw SQL, `dbshell`, another program). Both accept one
change only: a clearable reference (see `CLEARABLE_REFERENCES`) set to NULL while every other
column stays the same, which is what Django does for on_delete=SET_NULL when a user,
organisation, patient record or study is deleted. The text copies keep the evidence.

PostgreSQL: one plpgsql function behind a BEFORE UPDATE OR DELETE row trigger and a BEFORE
TRUNCATE statement trigger. It compares `to_jsonb(NEW)` and `to_jsonb(OLD)` minus the
clearable columns, so a column added later is covered without touching the function.

SQLite: a BEFORE UPDATE trigger whose WHEN lists every column (generated from the model, so it
is regenerated when columns change, see `ensure_guard`) and a BEFORE DELETE trigger. SQLite has
no TRUNCATE; `DELETE FROM t` fires row triggers whenever the table has any.

Tests need one exception. Between transactional tests Django's `flush` empties every table:
TRUNCATE on PostgreSQL, DELETE on SQLite. A test database (the one the test runner created,
recognised by its configured TEST NAME) therefore gets a DELETE/TRUNCATE trigger that steps
aside while a purge marker is set on the deleting connection: on PostgreSQL the session setting
`readingroom.audit_purge`, on SQLite an application-defined SQL function that reads a flag on
the Django connection. Only `audit`'s override of the `flush` command sets the marker, and
only on a test database. Every other database gets triggers with no such clause, so nothing,
not even `manage.py flush`, removes audit events there. The SQLite function exists only in
Django processes; any other SQLite client cannot even compile a DELETE on the table.

SQLite drops a table's triggers when a migration rebuilds the table (`_remake_table`), so a
post_migrate receiver (`ensure_guard`) re-creates them whenever they differ from what the
current schema needs. Honest limit: anyone who owns the database (or the SQLite file) can drop
a trigger; against that, run the web processes as a PostgreSQL role that does not own the
table and ship events to an external audit repository (the syslog export).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

TABLE = "audit_auditevent"
MESSAGE = "audit events are append-only"
PG_FUNCTION = "audit_auditevent_append_only"
PG_ROW_TRIGGER = "audit_auditevent_append_only"
PG_TRUNCATE_TRIGGER = "audit_auditevent_no_truncate"
PG_PURGE_SETTING = "readingroom.audit_purge"
SQLITE_UPDATE_TRIGGER = "audit_auditevent_no_update"
SQLITE_DELETE_TRIGGER = "audit_auditevent_no_delete"
SQLITE_PURGE_FUNCTION = "readingroom_audit_purge_permitted"
_PURGE_FLAG = "_readingroom_audit_purge"


def is_test_database(connection: BaseDatabaseWrapper) -> bool:
    """True only on the database the test runner created (its NAME is the TEST NAME)."""
    try:
        test_name = connection.creation._get_test_db_name()
    except Exception:  # a backend without test settings is not a test database
        return False
    return bool(test_name) and connection.settings_dict.get("NAME") == test_name


def _columns(model: Any) -> tuple[list[str], list[str]]:
    """(columns that never change, columns that may only be cleared to NULL)."""
    from .models import CLEARABLE_REFERENCES

    fixed, clearable = [], []
    for field in model._meta.concrete_fields:
        if field.name in CLEARABLE_REFERENCES:
            if not field.null:
                raise ValueError(f"{field.name} must be nullable to be clearable")
            clearable.append(field.column)
        else:
            fixed.append(field.column)
    # Sorted: a historical model (migrations) and the live one list fields in different orders.
    return sorted(fixed), sorted(clearable)


# --- PostgreSQL ---------------------------------------------------------------------------


def _pg_function_body(model: Any, allow_test_purge: bool) -> str:
    _, clearable = _columns(model)
    names = ", ".join(f"'{c}'" for c in clearable)
    cleared = " AND ".join(
        f'(NEW."{c}" IS NULL OR NEW."{c}" IS NOT DISTINCT FROM OLD."{c}")' for c in clearable
    )
    purge = ""
    if allow_test_purge:
        purge = f"""
  IF TG_OP IN ('DELETE', 'TRUNCATE')
     AND current_setting('{PG_PURGE_SETTING}', true) = 'on' THEN
    IF TG_LEVEL = 'ROW' THEN
      RETURN OLD;
    END IF;
    RETURN NULL;
  END IF;"""
    return f"""
BEGIN
  IF TG_OP = 'UPDATE'
     AND (to_jsonb(NEW) - ARRAY[{names}]::text[]) = (to_jsonb(OLD) - ARRAY[{names}]::text[])
     AND {cleared} THEN
    RETURN NEW;
  END IF;{purge}
  RAISE EXCEPTION '{MESSAGE} (% refused)', TG_OP USING ERRCODE = 'restrict_violation';
END;
"""


def _pg_statements(model: Any, allow_test_purge: bool) -> list[str]:
    body = _pg_function_body(model, allow_test_purge)
    return [
        f"CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger "
        f"LANGUAGE plpgsql AS $guard${body}$guard$",
        f"DROP TRIGGER IF EXISTS {PG_ROW_TRIGGER} ON {TABLE}",
        f"CREATE TRIGGER {PG_ROW_TRIGGER} BEFORE UPDATE OR DELETE ON {TABLE} "
        f"FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}()",
        f"DROP TRIGGER IF EXISTS {PG_TRUNCATE_TRIGGER} ON {TABLE}",
        f"CREATE TRIGGER {PG_TRUNCATE_TRIGGER} BEFORE TRUNCATE ON {TABLE} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()",
    ]


def _pg_installed(connection: BaseDatabaseWrapper, model: Any, allow_test_purge: bool) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT prosrc FROM pg_proc WHERE proname = %s AND pronamespace = "
            "(SELECT oid FROM pg_namespace WHERE nspname = current_schema())",
            [PG_FUNCTION],
        )
        row = cursor.fetchone()
        if row is None or row[0] != _pg_function_body(model, allow_test_purge):
            return False
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
            [TABLE],
        )
        return {PG_ROW_TRIGGER, PG_TRUNCATE_TRIGGER} <= {r[0] for r in cursor.fetchall()}


# --- SQLite -------------------------------------------------------------------------------


def _sqlite_statements(model: Any, allow_test_purge: bool) -> dict[str, str]:
    """{trigger name: CREATE TRIGGER statement}, exactly as sqlite_master will store it."""
    fixed, clearable = _columns(model)
    unchanged = [f'NEW."{c}" IS OLD."{c}"' for c in fixed]
    unchanged += [f'(NEW."{c}" IS OLD."{c}" OR NEW."{c}" IS NULL)' for c in clearable]
    condition = "\n  AND ".join(unchanged)
    purge_clause = f"\nWHEN {SQLITE_PURGE_FUNCTION}() IS NOT 1" if allow_test_purge else ""
    return {
        SQLITE_UPDATE_TRIGGER: (
            f'CREATE TRIGGER "{SQLITE_UPDATE_TRIGGER}" BEFORE UPDATE ON "{TABLE}" FOR EACH ROW\n'
            f"WHEN NOT (\n  {condition}\n)\n"
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        ),
        SQLITE_DELETE_TRIGGER: (
            f'CREATE TRIGGER "{SQLITE_DELETE_TRIGGER}" BEFORE DELETE ON "{TABLE}" FOR EACH ROW'
            f"{purge_clause}\nBEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        ),
    }


def _sqlite_installed(connection: BaseDatabaseWrapper) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s",
            [TABLE],
        )
        return dict(cursor.fetchall())


def register_sqlite_function(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """connection_created receiver: the purge marker test-database triggers consult."""
    if connection.vendor != "sqlite":
        return

    def permitted() -> int:
        return 1 if getattr(connection, _PURGE_FLAG, False) else 0

    connection.connection.create_function(SQLITE_PURGE_FUNCTION, 0, permitted)


# --- the verbs ----------------------------------------------------------------------------


def install_guard(
    connection: BaseDatabaseWrapper, model: Any, *, allow_test_purge: bool | None = None
) -> None:
    """(Re)create the triggers for `model` (a historical model in migrations)."""
    if allow_test_purge is None:
        allow_test_purge = is_test_database(connection)
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for sql in _pg_statements(model, allow_test_purge):
                cursor.execute(sql)
        elif connection.vendor == "sqlite":
            for name, sql in _sqlite_statements(model, allow_test_purge).items():
                cursor.execute(f'DROP TRIGGER IF EXISTS "{name}"')
                cursor.execute(sql)
        else:
            raise NotImplementedError(
                f"audit events have no append-only guard for {connection.vendor}; "
                "ReadingRoom supports PostgreSQL and SQLite"
            )


def remove_guard(connection: BaseDatabaseWrapper) -> None:
    """Drop the triggers (reverse migration only: the table goes with them)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"DROP TRIGGER IF EXISTS {PG_ROW_TRIGGER} ON {TABLE}")
            cursor.execute(f"DROP TRIGGER IF EXISTS {PG_TRUNCATE_TRIGGER} ON {TABLE}")
            cursor.execute(f"DROP FUNCTION IF EXISTS {PG_FUNCTION}()")
        elif connection.vendor == "sqlite":
            cursor.execute(f'DROP TRIGGER IF EXISTS "{SQLITE_UPDATE_TRIGGER}"')
            cursor.execute(f'DROP TRIGGER IF EXISTS "{SQLITE_DELETE_TRIGGER}"')


def guard_installed(connection: BaseDatabaseWrapper, model: Any) -> bool:
    allow = is_test_database(connection)
    if connection.vendor == "postgresql":
        return _pg_installed(connection, model, allow)
    if connection.vendor == "sqlite":
        return _sqlite_installed(connection) == _sqlite_statements(model, allow)
    return False


def ensure_guard(connection: BaseDatabaseWrapper, model: Any) -> bool:
    """Re-create the triggers if missing or stale (a rebuilt table); True if it had to."""
    if TABLE not in connection.introspection.table_names():
        return False
    if guard_installed(connection, model):
        return False
    install_guard(connection, model)
    return True


@contextmanager
def purge_permitted(connection: BaseDatabaseWrapper) -> Iterator[bool]:
    """Let this connection empty the table while inside, on a test database only.

    Yields whether the marker was set. Used by the `flush` override; never by application code.
    """
    if not is_test_database(connection):
        yield False
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config(%s, 'on', false)", [PG_PURGE_SETTING])
    setattr(connection, _PURGE_FLAG, True)
    try:
        yield True
    finally:
        setattr(connection, _PURGE_FLAG, False)
        if connection.vendor == "postgresql":
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT set_config(%s, 'off', false)", [PG_PURGE_SETTING])
            except DatabaseError:
                # A broken session must not live on with the marker set.
                connection.close()
