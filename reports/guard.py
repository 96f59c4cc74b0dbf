"""The database half of report immutability (the ORM half is in `reports.models`).

- reports_reportversion: no UPDATE, ever; no DELETE.
- reports_report: once status is final or addended, no UPDATE may change anything but
  `status` (final -> addended) and `updated_at`; no DELETE.

Deletes step aside only for the test runner's flush, through the purge marker `audit.guard`
sets on test databases (PostgreSQL session setting; SQLite function registered on every
Django connection). PostgreSQL flushes with TRUNCATE, which row triggers never see.
SQLite drops a table's triggers when a migration rebuilds it, so `install` runs after every
migrate (post_migrate) as well as in the migration.
"""

from __future__ import annotations

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper

from audit.guard import PG_PURGE_SETTING, SQLITE_PURGE_FUNCTION

MESSAGE = "signed reports are immutable"
REPORT = "reports_report"
VERSION = "reports_reportversion"
MUTABLE_AFTER_FINAL = ("status", "updated_at")


class ImmutableError(DatabaseError):
    """Raised by the ORM guard; the triggers raise the backend's own error with MESSAGE."""


def _pg(report_columns: list[str]) -> list[str]:
    keep = ", ".join(f"'{c}'" for c in MUTABLE_AFTER_FINAL)
    return [
        f"""CREATE OR REPLACE FUNCTION reports_guard() RETURNS trigger LANGUAGE plpgsql AS $g$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('{PG_PURGE_SETTING}', true) = 'on' THEN
    RETURN OLD;
  END IF;
  IF TG_TABLE_NAME = '{REPORT}' THEN
    IF TG_OP = 'UPDATE' AND (OLD.status NOT IN ('final', 'addended') OR (
         NEW.status IN ('final', 'addended')
         AND (to_jsonb(NEW) - ARRAY[{keep}]::text[]) = (to_jsonb(OLD) - ARRAY[{keep}]::text[])))
    THEN RETURN NEW; END IF;
    IF TG_OP = 'DELETE' AND OLD.status NOT IN ('final', 'addended') THEN RETURN OLD; END IF;
  END IF;
  RAISE EXCEPTION '{MESSAGE} (% refused)', TG_OP USING ERRCODE = 'restrict_violation';
END; $g$""",
        f"DROP TRIGGER IF EXISTS reports_guard ON {REPORT}",
        f"CREATE TRIGGER reports_guard BEFORE UPDATE OR DELETE ON {REPORT} "
        "FOR EACH ROW EXECUTE FUNCTION reports_guard()",
        f"DROP TRIGGER IF EXISTS reports_guard ON {VERSION}",
        f"CREATE TRIGGER reports_guard BEFORE UPDATE OR DELETE ON {VERSION} "
        "FOR EACH ROW EXECUTE FUNCTION reports_guard()",
    ]


def _sqlite(report_columns: list[str]) -> list[str]:
    fixed = [c for c in report_columns if c not in MUTABLE_AFTER_FINAL]
    changed = " OR ".join(f'NEW."{c}" IS NOT OLD."{c}"' for c in fixed)
    signed = "OLD.status IN ('final', 'addended')"
    purge = f"{SQLITE_PURGE_FUNCTION}() IS NOT 1"
    statements = []
    for name in (
        "reports_report_update",
        "reports_report_delete",
        "reports_version_update",
        "reports_version_delete",
    ):
        statements.append(f'DROP TRIGGER IF EXISTS "{name}"')
    statements += [
        f'CREATE TRIGGER "reports_report_update" BEFORE UPDATE ON "{REPORT}" FOR EACH ROW '
        f"WHEN {signed} AND ({changed} OR NEW.status NOT IN ('final', 'addended')) "
        f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
        f'CREATE TRIGGER "reports_report_delete" BEFORE DELETE ON "{REPORT}" FOR EACH ROW '
        f"WHEN {signed} AND {purge} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
        f'CREATE TRIGGER "reports_version_update" BEFORE UPDATE ON "{VERSION}" FOR EACH ROW '
        f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
        f'CREATE TRIGGER "reports_version_delete" BEFORE DELETE ON "{VERSION}" FOR EACH ROW '
        f"WHEN {purge} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
    ]
    return statements


def install(connection: BaseDatabaseWrapper, report_model) -> None:
    """(Re)create the triggers; `report_model` may be a migration's historical model."""
    tables = connection.introspection.table_names()
    if REPORT not in tables or VERSION not in tables:
        return
    columns = [f.column for f in report_model._meta.concrete_fields]
    if connection.vendor == "postgresql":
        statements = _pg(columns)
    elif connection.vendor == "sqlite":
        statements = _sqlite(columns)
    else:
        raise NotImplementedError(f"no report guard for {connection.vendor}")
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
