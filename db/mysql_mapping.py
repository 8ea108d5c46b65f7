"""A mapping installed on MySQL/MariaDB: views, a status function, sync procedures and capture triggers.

The same design as on PostgreSQL (see :mod:`db.mapping`), in MySQL's terms:
apptflow's objects are named with its prefix beside the application's tables
(``apptflow_appointments`` is the mapping's view of the appointments); a
procedure per target (``apptflow_sync_appointments``) compares a view's row
with the last one seen and records the difference as a change event; and the
triggers on the application's tables call it inside a CONTINUE handler, so
that no error of apptflow's ever fails the application's statement.

Every time is computed without the session's time zone (``TIMESTAMPADD``, not
``FROM_UNIXTIME``): the triggers run in the application's sessions, whatever
time zone WordPress gave them.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from db.connect import own_prefix, own_table

SQL_TEXT = "VARCHAR(255)"


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def status_function(conn: Connection, statuses: dict[str, str]) -> list[str]:
    """``<prefix>status_code(value)``: the application's status as apptflow's code, the inverse of *statuses*."""
    name = own_table(conn, "status_code")
    cases = " ".join(f"WHEN {_literal(value)} THEN {_literal(code)}" for code, value in sorted(statuses.items()))
    body = f"CASE value {cases} ELSE value END" if statuses else "value"
    return [f"DROP FUNCTION IF EXISTS {_ident(name)}",
            f"CREATE FUNCTION {_ident(name)}(value {SQL_TEXT}) RETURNS {SQL_TEXT} "
            f"DETERMINISTIC NO SQL RETURN {body}"]


def view_sql(conn: Connection, select: str) -> str:
    """A mapping's SELECT with its ``status_code(`` calls naming apptflow's function."""
    return select.replace("status_code(", own_table(conn, "status_code") + "(")


def _doc(alias: str, columns: tuple[str, ...]) -> str:
    return "JSON_OBJECT(" + ", ".join(f"'{c}', {alias}.{_ident(c)}" for c in columns) + ")"


def sync_procedure(conn: Connection, target: str, watched: tuple[str, ...], continues: str | None) -> list[str]:
    """``<prefix>sync_<target>(rid)``: the view's row now against the last one seen; a change event for a
    difference (INSERT, UPDATE, DELETE; UPDATE too for a row that continues another)."""
    name = own_table(conn, f"sync_{target}")
    view, snapshots, events = (_ident(own_table(conn, t)) for t in (target, "capture_snapshots", "change_events"))
    follow = ""
    if continues:
        follow = f"""
            SET previous = ({continues.replace(':appointment_id', 'rid')});
            IF previous IS NOT NULL THEN
                SET old_doc = (SELECT s.doc FROM {snapshots} s WHERE s.table_name = '{target}'
                               AND s.row_id = previous);
                IF old_doc IS NOT NULL THEN
                    SET op = 'UPDATE';
                END IF;
            END IF;"""
    return [f"DROP PROCEDURE IF EXISTS {_ident(name)}", f"""
CREATE PROCEDURE {_ident(name)}(IN rid BIGINT)
sync: BEGIN
    DECLARE previous BIGINT;
    DECLARE old_doc, new_doc LONGTEXT;
    DECLARE was_gone BOOLEAN;
    DECLARE op VARCHAR(10);
    IF rid IS NULL THEN
        LEAVE sync;
    END IF;
    SET new_doc = (SELECT {_doc('v', watched)} FROM {view} v WHERE v.id = rid LIMIT 1);
    SELECT s.doc, s.gone INTO old_doc, was_gone FROM {snapshots} s
    WHERE s.table_name = '{target}' AND s.row_id = rid LIMIT 1;
    IF was_gone AND new_doc IS NOT NULL THEN
        SET old_doc = NULL;
    END IF;
    IF new_doc IS NULL AND (old_doc IS NULL OR was_gone) THEN
        LEAVE sync;
    END IF;
    IF new_doc <=> old_doc THEN
        LEAVE sync;
    END IF;
    IF new_doc IS NULL THEN
        SET op = 'DELETE';
    ELSEIF old_doc IS NOT NULL THEN
        SET op = 'UPDATE';
    ELSE
        SET op = 'INSERT';{follow}
    END IF;
    INSERT INTO {snapshots} (table_name, row_id, doc, gone)
    VALUES ('{target}', rid, COALESCE(new_doc, old_doc), new_doc IS NULL)
    ON DUPLICATE KEY UPDATE doc = VALUES(doc), gone = VALUES(gone);
    INSERT INTO {events} (table_name, row_id, op, old, new, depth, created_at)
    VALUES ('{target}', rid, op, old_doc, new_doc, COALESCE(@apptflow_depth, 0), UTC_TIMESTAMP(6));
END"""]


def capture_triggers(conn: Connection, table: str, targets: dict[str, tuple[str, ...]]) -> list[str]:
    """The application's *table*: after each write, the sync procedure of each target for the ids its
    expressions give, inside a handler that records an error instead of raising it."""
    errors = _ident(own_table(conn, "capture_errors"))
    statements = []
    for op in ("INSERT", "UPDATE", "DELETE"):
        calls = []
        for target, expressions in targets.items():
            procedure = _ident(own_table(conn, f"sync_{target}"))
            for expression in expressions:
                if ("OLD." in expression and op == "INSERT") or ("NEW." in expression and op == "DELETE"):
                    continue
                calls.append(f"CALL {procedure}({expression});")
        name = f"{own_prefix(conn)}capture_{table}_{op.lower()}"[:64]
        statements.append(f"DROP TRIGGER IF EXISTS {_ident(name)}")
        if not calls:
            continue
        body = "\n    ".join(calls)
        statements.append(f"""
CREATE TRIGGER {_ident(name)} AFTER {op} ON {_ident(table)} FOR EACH ROW
BEGIN
    DECLARE CONTINUE HANDLER FOR SQLEXCEPTION
    BEGIN
        DECLARE CONTINUE HANDLER FOR SQLEXCEPTION BEGIN END;
        GET DIAGNOSTICS CONDITION 1 @apptflow_capture_error = MESSAGE_TEXT,
            @apptflow_capture_state = RETURNED_SQLSTATE;
        INSERT INTO {errors} (table_name, op, error, created_at)
        VALUES ({_literal(table)}, '{op}',
                CONCAT(@apptflow_capture_error, ' (SQLSTATE ', @apptflow_capture_state, ')'), UTC_TIMESTAMP(6));
    END;
    {body}
END""")
    return statements


def first_snapshots(conn: Connection, target: str, watched: tuple[str, ...]) -> str:
    """Take the first look at every row of a view, so that a row's first change has its previous values."""
    view, snapshots = (_ident(own_table(conn, t)) for t in (target, "capture_snapshots"))
    return (f"INSERT IGNORE INTO {snapshots} (table_name, row_id, doc, gone) "
            f"SELECT '{target}', v.id, {_doc('v', watched)}, FALSE FROM {view} v")


def own_routines(conn: Connection) -> list[tuple[str, str]]:
    """apptflow's functions and procedures in this database: (FUNCTION | PROCEDURE, name)."""
    pattern = own_prefix(conn).replace("_", "\\_") + "%"
    return [tuple(row) for row in conn.exec_driver_sql(
        "SELECT routine_type, routine_name FROM information_schema.routines WHERE routine_schema = DATABASE() "
        "AND routine_name LIKE %s ORDER BY routine_name", (pattern,)).all()]


def own_views(conn: Connection) -> list[str]:
    """apptflow's views (a mapping's) in this database."""
    pattern = own_prefix(conn).replace("_", "\\_") + "%"
    return list(conn.exec_driver_sql(
        "SELECT table_name FROM information_schema.views WHERE table_schema = DATABASE() "
        "AND table_name LIKE %s ORDER BY table_name", (pattern,)).scalars())
