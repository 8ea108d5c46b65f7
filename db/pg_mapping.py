"""A mapping installed on PostgreSQL: its views, status function, sync and capture functions, and triggers.

Everything lives in apptflow's schema (first in its connections' search path)
but the triggers on the application's tables; a capture function never fails
the application's statement (an error is caught, raised as a WARNING and kept
in ``capture_errors``). See :mod:`db.mapping_file` for what a mapping is, and
:mod:`db.mysql_mapping` for the same on MySQL/MariaDB.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from db.mapping_file import STATUS_FUNCTION, Capture, Mapping
from db.options import own_schema
from db.servers.postgresql import NOTIFY_CHANNEL
from db.tables import BOOKING_TABLES

VIEWS = tuple(table.name for table in BOOKING_TABLES)  # what a mapping gives a view of, each in this order


def ddl(conn: Connection, statement: str) -> None:
    """Run *statement* as written: no parameters, so that ``%`` and ``:name`` in a mapping's SQL are SQL."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _status_function(schema: str, statuses: dict[str, str]) -> str:
    """``<schema>.status_code(value)``: the application's status as apptflow's code, the inverse of *statuses*;
    a value it does not list reads as written. Plain SQL, so PostgreSQL inlines it into the view."""
    cases = " ".join(f"WHEN {_literal(value)} THEN {_literal(code)}" for code, value in sorted(statuses.items()))
    body = f"CASE value {cases} ELSE value END" if statuses else "value"
    return (f"CREATE OR REPLACE FUNCTION {schema}.{STATUS_FUNCTION}(value text) RETURNS text "
            f"LANGUAGE sql IMMUTABLE AS $status$ SELECT {body} $status$")


def _sync_function(schema: str, target: str, columns: tuple[str, ...], continues: str | None) -> str:
    """``<schema>.sync_<target>(ids)``: for each id, the view's row now against the last one seen; a change
    event for each difference (INSERT, UPDATE, DELETE; UPDATE too for a row that continues another)."""
    watched = ", ".join(f"'{column}'" for column in columns)
    follow = ""
    if continues:
        follow = f"""
            previous := ({continues.replace(':appointment_id', 'rid')});
            IF previous IS NOT NULL THEN
                SELECT s.doc INTO old_doc FROM {schema}.capture_snapshots s
                WHERE s.table_name = '{target}' AND s.row_id = previous;
                IF old_doc IS NOT NULL THEN
                    op := 'UPDATE';
                END IF;
            END IF;"""
    return f"""
CREATE OR REPLACE FUNCTION {schema}.sync_{target}(ids bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    rid bigint;
    previous bigint;
    old_doc jsonb;
    new_doc jsonb;
    was_gone boolean;
    op text;
    chain_depth integer := coalesce(nullif(current_setting('apptflow.depth', true), ''), '0')::integer;
BEGIN
    FOR rid IN SELECT DISTINCT x FROM unnest(ids) AS x WHERE x IS NOT NULL LOOP
        SELECT jsonb_object_agg(e.key, e.value) INTO new_doc
        FROM {schema}.{target} v, jsonb_each(to_jsonb(v)) e
        WHERE v.id = rid AND e.key = ANY(ARRAY[{watched}]);
        SELECT s.doc, s.gone INTO old_doc, was_gone FROM {schema}.capture_snapshots s
        WHERE s.table_name = '{target}' AND s.row_id = rid;
        IF was_gone AND new_doc IS NOT NULL THEN
            old_doc := NULL;
        END IF;
        IF new_doc IS NULL AND (old_doc IS NULL OR was_gone) THEN
            CONTINUE;
        END IF;
        IF new_doc IS NOT DISTINCT FROM old_doc THEN
            CONTINUE;
        END IF;
        IF new_doc IS NULL THEN
            op := 'DELETE';
        ELSIF old_doc IS NOT NULL THEN
            op := 'UPDATE';
        ELSE
            op := 'INSERT';{follow}
        END IF;
        INSERT INTO {schema}.capture_snapshots (table_name, row_id, doc, gone)
        VALUES ('{target}', rid, coalesce(new_doc, old_doc), new_doc IS NULL)
        ON CONFLICT (table_name, row_id) DO UPDATE SET doc = EXCLUDED.doc, gone = EXCLUDED.gone;
        INSERT INTO {schema}.change_events (table_name, row_id, op, old, new, depth)
        VALUES ('{target}', rid, op, old_doc, new_doc, chain_depth);
        PERFORM pg_notify('{NOTIFY_CHANNEL}', '{target}');
    END LOOP;
END;
$$
"""


def _capture_function(schema: str, capture: Capture) -> str:
    """The function of both capture triggers on *capture*'s table: ``apptflow_capture`` calls it after each
    write, ``apptflow_capture_at_commit`` (with one argument) after each update, at commit. The first takes
    the updates ``at_commit`` does not hold for, the second those it holds for. The condition is checked here,
    where an error is caught, rather than in a trigger's WHEN, where an error would fail the application's
    statement and the columns it names could no longer be dropped by the application's migrations."""
    deferral = ""
    if capture.at_commit:
        deferral = f"""IF TG_OP = 'UPDATE' AND coalesce(({capture.at_commit}), false) <> (TG_NARGS > 0) THEN
            RETURN NULL;  -- the other trigger captures this update
        END IF;
        """
    calls = []
    for target, expressions in capture.targets.items():
        values = ", ".join(
            f"(CASE WHEN TG_OP <> '{'INSERT' if 'OLD.' in e else 'DELETE'}' THEN ({e}) END)::bigint"
            for e in expressions)
        calls.append(f"PERFORM {schema}.sync_{target}(ARRAY[{values}]);")
    body = "\n        ".join(calls)
    return f"""
CREATE OR REPLACE FUNCTION {schema}.{_ident('capture_' + capture.table)}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        {deferral}{body}
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'apptflow could not capture % on %: % (SQLSTATE %)', TG_OP, TG_TABLE_NAME, SQLERRM, SQLSTATE;
        BEGIN
            INSERT INTO {schema}.capture_errors (table_name, op, row_doc, error)
            VALUES (TG_TABLE_NAME, TG_OP, CASE WHEN TG_OP = 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END,
                    SQLERRM || ' (SQLSTATE ' || SQLSTATE || ')');
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END;
    RETURN NULL;
END;
$$
"""


def install(conn: Connection, mapping: Mapping, watched: dict[str, tuple[str, ...]]) -> None:
    """Create (or replace) the mapping's views in apptflow's schema, its status function, the sync and
    capture functions and the triggers on the application's tables; then take the first look at every row
    (so that the first change of a row already has its previous values)."""
    schema = own_schema(conn)
    for table in VIEWS:  # dependants first: a view may read another
        ddl(conn, f"DROP VIEW IF EXISTS {schema}.{table} CASCADE")
    ddl(conn, _status_function(schema, mapping.statuses))
    for table in VIEWS:
        ddl(conn, f"CREATE VIEW {schema}.{table} AS {mapping.views[table]}")
    for target in watched:
        ddl(conn, _sync_function(schema, target, watched[target],
                                 mapping.continues if target == "appointments" else None))
    for capture in mapping.capture:
        function = f"{schema}.{_ident('capture_' + capture.table)}"
        ddl(conn, _capture_function(schema, capture))
        ddl(conn, f"DROP TRIGGER IF EXISTS apptflow_capture ON {_ident(capture.table)}")
        ddl(conn, f"CREATE TRIGGER apptflow_capture AFTER INSERT OR UPDATE OR DELETE ON "
                  f"{_ident(capture.table)} FOR EACH ROW EXECUTE FUNCTION {function}()")
        ddl(conn, f"DROP TRIGGER IF EXISTS apptflow_capture_at_commit ON {_ident(capture.table)}")
        if capture.at_commit:
            ddl(conn, f"CREATE CONSTRAINT TRIGGER apptflow_capture_at_commit AFTER UPDATE ON {_ident(capture.table)} "
                      f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {function}('at_commit')")
    for target, columns in watched.items():
        names = ", ".join(f"'{column}'" for column in columns)
        ddl(conn, f"INSERT INTO {schema}.capture_snapshots (table_name, row_id, doc, gone) "
                  f"SELECT '{target}', v.id, (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(to_jsonb(v)) e "
                  f"WHERE e.key = ANY(ARRAY[{names}])), false FROM {schema}.{target} v "
                  "ON CONFLICT (table_name, row_id) DO NOTHING")


def check_capture(conn: Connection, fine: list[str], problems: list[str]) -> None:
    """The capture triggers apptflow's functions serve, and the changes they could not record."""
    schema = own_schema(conn)
    triggers = conn.execute(text(
        "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p "
        "ON p.oid = t.tgfoid JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = :schema "
        "AND NOT t.tgisinternal"), {"schema": schema}).scalars().all()
    fine.append(f"change capture on {', '.join(sorted(set(triggers)))}") if triggers else \
        problems.append("no change capture installed: run apptflow db init")
    errors = conn.execute(text(f"SELECT count(*), max(created_at) FROM {schema}.capture_errors")).one()
    if errors[0]:
        problems.append(f"{errors[0]} change(s) could not be captured, the last at {errors[1]} "
                        "(see the capture_errors table)")


def status_function_state(conn: Connection) -> tuple[str, bool]:
    """The status function's name, and whether the appointments view depends on it (PostgreSQL knows)."""
    schema = own_schema(conn)
    reads_through = conn.execute(text(
        "SELECT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
        "WHERE d.classid = 'pg_rewrite'::regclass AND r.ev_class = to_regclass(:view) "
        "AND d.refobjid = to_regprocedure(:function))"),
        {"view": f"{schema}.appointments", "function": f"{schema}.{STATUS_FUNCTION}(text)"}).scalar()
    return f"{schema}.{STATUS_FUNCTION}", bool(reads_through)
