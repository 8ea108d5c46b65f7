"""MySQL/MariaDB: capture triggers and routines, (re)installed without a gap while the application writes.

MySQL commits every DDL statement on its own and has no CREATE OR REPLACE
TRIGGER: dropping a trigger to create it again leaves a moment in which the
application's writes are not captured. So ``db init`` and ``db upgrade`` leave
a trigger or routine alone when the database already holds it as apptflow
would write it, and replace only what changed. The same holds for the
procedures and the status function a mapping's triggers call.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.engine import Connection


def literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _same(stored: str | None, body: str) -> bool:
    squeeze = lambda sql: re.sub(r"\s+", " ", sql or "").strip()  # noqa: E731
    return stored is not None and squeeze(stored) == squeeze(body)


def error_handler(errors_table: str, table: str, op: str) -> str:
    """The handler every capture trigger opens with: any error becomes a row of *errors_table* (and, if even
    that fails, nothing), so that the writer's statement goes through."""
    return f"""DECLARE CONTINUE HANDLER FOR SQLEXCEPTION
    BEGIN
        DECLARE CONTINUE HANDLER FOR SQLEXCEPTION BEGIN END;
        GET DIAGNOSTICS CONDITION 1 @apptflow_capture_error = MESSAGE_TEXT,
            @apptflow_capture_state = RETURNED_SQLSTATE;
        INSERT INTO {ident(errors_table)} (table_name, op, error, created_at)
        VALUES ({literal(table)}, '{op}',
                CONCAT(@apptflow_capture_error, ' (SQLSTATE ', @apptflow_capture_state, ')'), UTC_TIMESTAMP(6));
    END;"""


def replace_trigger(conn: Connection, name: str, op: str, table: str, body: str) -> None:
    """Trigger *name* AFTER *op* ON *table* with *body* (``BEGIN ... END``), unless it is there already."""
    stored = conn.execute(text(
        "SELECT action_statement FROM information_schema.triggers WHERE trigger_schema = DATABASE() "
        "AND trigger_name = :name AND event_manipulation = :op AND event_object_table = :table"),
        {"name": name, "op": op, "table": table}).scalar()
    if _same(stored, body):
        return
    execute(conn, f"DROP TRIGGER IF EXISTS {ident(name)}")
    execute(conn, f"CREATE TRIGGER {ident(name)} AFTER {op} ON {ident(table)} FOR EACH ROW\n{body}")


def replace_routine(conn: Connection, kind: str, name: str, signature: str, body: str) -> None:
    """A FUNCTION or PROCEDURE *name* with *signature* (what comes between its name and its body), unless it
    is there already with that body."""
    stored = conn.execute(text(
        "SELECT routine_definition FROM information_schema.routines WHERE routine_schema = DATABASE() "
        "AND routine_name = :name AND routine_type = :kind"), {"name": name, "kind": kind}).scalar()
    if _same(stored, body):
        return
    execute(conn, f"DROP {kind} IF EXISTS {ident(name)}")
    execute(conn, f"CREATE {kind} {ident(name)}{signature}\n{body}")


def drop_trigger(conn: Connection, name: str) -> None:
    execute(conn, f"DROP TRIGGER IF EXISTS {ident(name)}")


def execute(conn: Connection, statement: str) -> None:
    """*statement* as written: no parameters, so that ``%`` and ``:name`` in it are SQL."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()
