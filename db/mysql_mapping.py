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

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

from db.capture import BOOKING_WATCHED, capture_triggers
from db.mapping_file import STATUS_FUNCTION, Mapping, MappingError
from db.mysql_triggers import error_handler, execute, ident, literal, replace_routine, replace_trigger
from db.options import own_prefix, own_table
from db.tables import BOOKING_TABLES

SQL_TEXT = "VARCHAR(255)"
# A document of watched values, compared byte for byte (the server's default collation may ignore case).
DOC = "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"


def install_status_function(conn: Connection, statuses: dict[str, str]) -> None:
    """``<prefix>status_code(value)``: the application's status as apptflow's code, the inverse of *statuses*."""
    cases = " ".join(f"WHEN {literal(value)} THEN {literal(code)}" for code, value in sorted(statuses.items()))
    body = f"RETURN CASE value {cases} ELSE value END" if statuses else "RETURN value"
    replace_routine(conn, "FUNCTION", own_table(conn, STATUS_FUNCTION),
                    f"(value {SQL_TEXT}) RETURNS {SQL_TEXT} DETERMINISTIC NO SQL", body)


def view_sql(conn: Connection, select: str) -> str:
    """A mapping's SELECT with its ``status_code(`` calls naming apptflow's function."""
    return select.replace(f"{STATUS_FUNCTION}(", own_table(conn, STATUS_FUNCTION) + "(")


def _doc(alias: str, columns: tuple[str, ...]) -> str:
    return "JSON_OBJECT(" + ", ".join(f"'{c}', {alias}.{ident(c)}" for c in columns) + ")"


def install_sync_procedure(conn: Connection, target: str, watched: tuple[str, ...], continues: str | None) -> None:
    """``<prefix>sync_<target>(rid)``: the view's row now against the last one seen; a change event for a
    difference (INSERT, UPDATE, DELETE; UPDATE too for a row that continues another)."""
    view, snapshots, events = (ident(own_table(conn, t)) for t in (target, "capture_snapshots", "change_events"))
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
    replace_routine(conn, "PROCEDURE", own_table(conn, f"sync_{target}"), "(IN rid BIGINT)", f"""sync: BEGIN
    DECLARE previous BIGINT;
    DECLARE old_doc, new_doc {DOC};
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
    ON DUPLICATE KEY UPDATE doc = COALESCE(new_doc, old_doc), gone = new_doc IS NULL;
    INSERT INTO {events} (table_name, row_id, op, old, new, depth, created_at)
    VALUES ('{target}', rid, op, old_doc, new_doc, COALESCE(@apptflow_depth, 0), UTC_TIMESTAMP(6));
END""")


def install_capture_triggers(conn: Connection, table: str, targets: dict[str, tuple[str, ...]]) -> None:
    """The application's *table*: after each write, the sync procedure of each target once for each id its
    expressions give (``NEW.id`` and ``OLD.id`` are one on most updates), inside the handler that records an
    error instead of raising it."""
    errors = own_table(conn, "capture_errors")
    for op in ("INSERT", "UPDATE", "DELETE"):
        declared, calls = [], []
        for target, expressions in targets.items():
            procedure = ident(own_table(conn, f"sync_{target}"))
            seen: list[str] = []
            for expression in expressions:
                if ("OLD." in expression and op == "INSERT") or ("NEW." in expression and op == "DELETE"):
                    continue
                name = f"{target}_{len(seen) + 1}"
                declared.append(name)
                once = " AND ".join(f"NOT ({name} <=> {earlier})" for earlier in seen)
                call = f"SET {name} = ({expression});\n    "
                call += f"IF {once} THEN CALL {procedure}({name}); END IF;" if once else f"CALL {procedure}({name});"
                calls.append(call)
                seen.append(name)
        if calls:
            body = "\n    ".join(calls)
            replace_trigger(conn, trigger_name(conn, table, op), op, table,
                            f"BEGIN\n    DECLARE {', '.join(declared)} BIGINT;\n    {error_handler(errors, table, op)}"
                            f"\n    {body}\nEND")


def trigger_name(conn: Connection, table: str, op: str) -> str:
    return f"{own_prefix(conn)}capture_{table}_{op.lower()}"[:64]


def first_snapshots(conn: Connection, target: str, watched: tuple[str, ...]) -> str:
    """Take the first look at every row of a view, so that a row's first change has its previous values."""
    view, snapshots = (ident(own_table(conn, t)) for t in (target, "capture_snapshots"))
    return (f"INSERT IGNORE INTO {snapshots} (table_name, row_id, doc, gone) "
            f"SELECT '{target}', v.id, {_doc('v', watched)}, FALSE FROM {view} v")


def install(conn: Connection, mapping: Mapping, watched: dict[str, tuple[str, ...]]) -> None:
    """The mapping's objects, named with apptflow's prefix. Nothing is dropped first: views are replaced in
    place, routines and triggers only where they changed, and the first snapshots are taken before the
    triggers exist, so that a write while this runs is never taken for a new booking."""
    if not reads_mapped_views(conn):
        raise MappingError(mapping.name, ["the connection does not read a mapping's views: connect with mapped=True "
                                          "([database] mapping set)"])
    if any(capture.at_commit for capture in mapping.capture):
        raise MappingError(mapping.name, ["capture: at_commit needs PostgreSQL (MySQL/MariaDB has no trigger that "
                                          "runs at commit)"])
    quote = conn.dialect.identifier_preparer.quote  # a view's name, prefixed: the engine reads mapped tables
    install_status_function(conn, mapping.statuses)
    for table in (t.name for t in BOOKING_TABLES):
        execute(conn, f"CREATE OR REPLACE VIEW {quote(table)} AS {view_sql(conn, mapping.views[table])}")
    for target, columns in watched.items():
        install_sync_procedure(conn, target, columns, mapping.continues if target == "appointments" else None)
        execute(conn, first_snapshots(conn, target, columns))
    for capture in mapping.capture:
        install_capture_triggers(conn, capture.table, capture.targets)


def reads_mapped_views(conn: Connection) -> bool:
    """Whether this connection names the booking tables as a mapping's views (connected with mapped=True)."""
    return conn.dialect.identifier_preparer.quote("appointments") == own_table(conn, "appointments")


def check_capture(conn: Connection, fine: list[str], problems: list[str]) -> None:
    """apptflow's capture triggers in this database, and the changes they could not record."""
    triggers = capture_triggers(conn)
    fine.append(f"change capture: {len(triggers)} triggers") if triggers else \
        problems.append("no change capture installed: run apptflow db init")
    errors = conn.execute(text(f"SELECT count(*), max(created_at) FROM {own_table(conn, 'capture_errors')}")).one()
    if errors[0]:
        problems.append(f"{errors[0]} change(s) could not be captured, the last at {errors[1]} "
                        f"(see the {own_table(conn, 'capture_errors')} table)")


def status_function_state(conn: Connection) -> tuple[str, bool]:
    """The same on MySQL/MariaDB, which keep a view's definition as text: whether it calls the function."""
    function = own_table(conn, STATUS_FUNCTION)
    definition = conn.execute(text("SELECT view_definition FROM information_schema.views WHERE "
                                   "table_schema = DATABASE() AND table_name = :view"),
                              {"view": own_table(conn, "appointments")}).scalar() or ""
    return function, f"`{function}`(" in definition or f"{function}(" in definition


def uninstall(conn: Connection) -> list[str]:
    """Drop the mapping's views, functions and procedures (its triggers go with the capture triggers);
    return what went."""
    removed = []
    for view in own_views(conn):
        conn.exec_driver_sql(f"DROP VIEW `{view}`")
        removed.append(f"view {view}")
    for kind, name in own_routines(conn):
        conn.exec_driver_sql(f"DROP {kind} `{name}`")
        removed.append(f"{kind.lower()} {name}")
    return removed


def own_routines(conn: Connection) -> list[tuple[str, str]]:
    """The functions and procedures a mapping installs, as they are in this database: (kind, name)."""
    names = [own_table(conn, STATUS_FUNCTION), *(own_table(conn, f"sync_{t}") for t in BOOKING_WATCHED)]
    return [tuple(row) for row in conn.execute(text(
        "SELECT routine_type, routine_name FROM information_schema.routines WHERE routine_schema = DATABASE() "
        "AND routine_name IN :names ORDER BY routine_name").bindparams(bindparam("names", expanding=True)),
        {"names": names}).all()]


def own_views(conn: Connection) -> list[str]:
    """The views a mapping installs, as they are in this database."""
    return list(conn.execute(text(
        "SELECT table_name FROM information_schema.views WHERE table_schema = DATABASE() "
        "AND table_name IN :names ORDER BY table_name").bindparams(bindparam("names", expanding=True)),
        {"names": [own_table(conn, table.name) for table in BOOKING_TABLES]}).scalars())
