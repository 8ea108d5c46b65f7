"""Mappings: apptflow on a booking application's own tables (PostgreSQL).

A mapping is a YAML file of plain SQL (see docs/existing-databases.md):

- ``views``: one SELECT per reference table (appointments, customers, services,
  staff, locations) giving its reference columns over the application's tables,
  with apptflow's status codes;
- ``statuses``: apptflow's status code → the application's value, the one
  declaration of the translation both ways: installing the mapping generates
  ``<schema>.status_code(value)`` from it, through which the appointments view
  gives its ``status``, and ``set_status`` writes the application's value
  (``:status``, already translated, and ``:appointment_id``); or
  ``read_only: <why>``;
- ``capture``: the application's tables whose writes matter, each with SQL
  expressions over ``NEW`` / ``OLD`` giving the appointment or customer ids a
  changed row affects;
- ``continues`` (optional): for an appointment that appears, the id of the one
  it replaces (an application that reschedules by creating a new booking);
- ``absent``: reference columns the application has no data for, with why; the
  keywords, recipient words (``customer``, ``staff``) and filters that read them
  are refused when a workflow is added.

Installing one creates the views in apptflow's schema, where they come first in
apptflow's search path, so every query of :mod:`db.booking` reads them as it
reads the reference tables. Change capture compares each affected row of a view
with the last one seen (``capture_snapshots``) and records the difference as a
change event of the reference table, in the writer's transaction; it never
fails the application's statement (an error is caught and recorded in
``capture_errors``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from db import mysql_mapping
from db.capture import NOTIFY_CHANNEL, WATCHES, capture_triggers
from db.connect import own_prefix, own_schema, own_table
from db.tables import BOOKING_TABLES, booking_mapping

TARGETS = ("appointments", "customers")  # the tables whose changes are events
STATUS_FUNCTION = "status_code"  # the application's status → apptflow's code, generated from ``statuses``
_WATCHED = {watch.table: watch.watched for watch in WATCHES if watch.table in TARGETS}
_COLUMNS = {table.name: tuple(table.c.keys()) for table in BOOKING_TABLES}
_SHIPPED = resources.files("db").joinpath("mappings")


class MappingError(ValueError):
    """A mapping file that cannot be used; ``problems`` say where and why."""

    def __init__(self, source: str, problems: list[str]):
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


class MappingRefusal(ValueError):
    """A write the installed mapping cannot make (a read-only mapping, a status it does not translate)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Capture:
    """One of the application's tables, and how a changed row leads to the rows of *targets* it affects."""

    table: str
    targets: dict[str, tuple[str, ...]]  # appointments | customers → SQL expressions over NEW / OLD


@dataclass(frozen=True, slots=True, kw_only=True)
class Mapping:
    name: str
    source: str = ""
    views: dict[str, str]
    statuses: dict[str, str] = field(default_factory=dict)
    set_status: str | None = None
    read_only: str | None = None
    capture: tuple[Capture, ...] = ()
    continues: str | None = None
    absent: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Installed:
    """What the daemon and the CLI need of the installed mapping (read from the database)."""

    name: str
    statuses: dict[str, str]
    set_status: str | None
    read_only: str | None
    absent: dict[str, str]


# --- reading a mapping file ---------------------------------------------------------------------------------

def shipped() -> list[str]:
    """The mappings that come with apptflow, by name."""
    return sorted(p.name.removesuffix(".yaml") for p in _SHIPPED.iterdir() if p.name.endswith(".yaml"))


# What a mapping's SQL may leave to the configuration: the application's table prefix (WordPress's ``wp_``)
# and the tenant of a multi-tenant application (NULL: every tenant).
OPTIONS = ("application_prefix", "tenant")


def load(name_or_path: str, *, application_prefix: str = "", tenant: int | None = None) -> Mapping:
    """A shipped mapping by name (``calcom``) or a mapping file; MappingError with every problem.

    ``{application_prefix}`` in its SQL becomes *application_prefix*, ``{tenant}`` the tenant's id or NULL."""
    if name_or_path in shipped():
        source, raw = name_or_path, _SHIPPED.joinpath(f"{name_or_path}.yaml").read_text(encoding="utf-8")
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise MappingError(name_or_path, [f"no such mapping file, and not a shipped mapping "
                                              f"({', '.join(shipped())})"])
        source, raw = str(path), path.read_text(encoding="utf-8")
    raw = raw.replace("{application_prefix}", application_prefix)
    raw = raw.replace("{tenant}", "NULL" if tenant is None else str(int(tenant)))
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise MappingError(source, [f"not YAML: {error}"]) from None
    return parse(document, source)


def _text(problems: list[str], document: dict, key: str, required: bool = False) -> str | None:
    value = document.get(key)
    if value is None:
        if required:
            problems.append(f"{key}: missing")
        return None
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{key}: expected SQL text")
        return None
    return value.strip().rstrip(";")


def parse(document: Any, source: str = "mapping") -> Mapping:
    """Check a mapping document whole; MappingError listing every problem with its place."""
    if not isinstance(document, dict):
        raise MappingError(source, ["a mapping is a YAML mapping of name, views, capture ..."])
    problems: list[str] = []
    known = ("name", "source", "views", "statuses", "set_status", "read_only", "capture", "continues", "absent")
    problems += [f"{key}: unknown field (expected one of: {', '.join(known)})" for key in document if key not in known]
    name = document.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append("name: missing")
    views = document.get("views") if isinstance(document.get("views"), dict) else {}
    if not isinstance(document.get("views"), dict):
        problems.append("views: expected a SELECT for each of " + ", ".join(_COLUMNS))
    for table in _COLUMNS:
        _text(problems, views, table, required=True) if table in views else problems.append(f"views.{table}: missing")
    problems += [f"views.{key}: not a reference table (expected one of: {', '.join(_COLUMNS)})"
                 for key in views if key not in _COLUMNS]
    statuses = document.get("statuses") or {}
    if not isinstance(statuses, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in
                                                 statuses.items()):
        problems.append("statuses: expected apptflow's status code: the application's value")
        statuses = {}
    read_only = document.get("read_only")
    if read_only is not None and (not isinstance(read_only, str) or not read_only.strip()):
        problems.append("read_only: expected the reason set_status cannot write (text)")
    set_status = _text(problems, document, "set_status")
    if read_only is None and set_status is None:
        problems.append("set_status: missing (or say why the mapping is read_only)")
    if set_status and not (":status" in set_status and ":appointment_id" in set_status):
        problems.append("set_status: must use :status and :appointment_id")
    if set_status and not statuses:
        problems.append("statuses: set_status needs the statuses it may write")
    by_value: dict[str, list[str]] = {}
    for code, value in statuses.items():
        by_value.setdefault(value, []).append(code)
    problems += [f"statuses: {' and '.join(codes)} are all written as {value!r}, which can read back as one "
                 "code only" for value, codes in by_value.items() if len(codes) > 1]
    appointments_view = views.get("appointments")
    if statuses and isinstance(appointments_view, str) and f"{STATUS_FUNCTION}(" not in appointments_view:
        problems.append(f"views.appointments: give the status as {STATUS_FUNCTION}(<the application's status>) "
                        "AS status, so that it reads through the same statuses set_status writes")
    captures = []
    entries = document.get("capture")
    if not isinstance(entries, list) or not entries:
        problems.append("capture: expected a list of the application's tables whose changes matter")
        entries = []
    for index, entry in enumerate(entries):
        place = f"capture[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("table"), str):
            problems.append(f"{place}: expected table: <name> and appointments and/or customers: [expressions]")
            continue
        targets = {}
        for key, value in entry.items():
            if key == "table":
                continue
            if key not in TARGETS:
                problems.append(f"{place}.{key}: expected appointments or customers")
            elif not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
                problems.append(f"{place}.{key}: expected a list of SQL expressions over NEW and OLD")
            else:
                targets[key] = tuple(value)
        if not targets:
            problems.append(f"{place}: gives neither appointments nor customers")
        captures.append(Capture(table=entry["table"], targets=targets))
    continues = _text(problems, document, "continues")
    if continues and ":appointment_id" not in continues:
        problems.append("continues: must use :appointment_id")
    absent = document.get("absent") or {}
    if not isinstance(absent, dict):
        problems.append("absent: expected table.column: why")
        absent = {}
    for column, why in absent.items():
        table, _, column_name = str(column).partition(".")
        if column_name not in _COLUMNS.get(table, ()):
            problems.append(f"absent.{column}: not a reference column (table.column)")
        elif not isinstance(why, str) or not why.strip():
            problems.append(f"absent.{column}: say why the application has no such data")
    if problems:
        raise MappingError(source, problems)
    return Mapping(name=name.strip(), source=str(document.get("source") or ""),
                   views={table: _text([], views, table) for table in _COLUMNS}, statuses=dict(statuses),
                   set_status=set_status, read_only=read_only, capture=tuple(captures), continues=continues,
                   absent={str(k): str(v) for k, v in absent.items()})


# --- installing ---------------------------------------------------------------------------------------------

def _ddl(conn: Connection, statement: str) -> None:
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


def _sync_function(schema: str, target: str, continues: str | None) -> str:
    """``<schema>.sync_<target>(ids)``: for each id, the view's row now against the last one seen; a change
    event for each difference (INSERT, UPDATE, DELETE; UPDATE too for a row that continues another)."""
    watched = ", ".join(f"'{column}'" for column in _WATCHED[target])
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
        {body}
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


def install(conn: Connection, mapping: Mapping) -> None:
    """Create (or replace) the mapping's views, capture functions and triggers, record it, and take the
    first look at every row (so that the first change of a row already has its previous values)."""
    if conn.dialect.name == "mysql":
        _install_mysql(conn, mapping)
        _record(conn, mapping)
        return
    schema = own_schema(conn)
    if schema is None:
        raise MappingError(mapping.name, ["mappings need PostgreSQL: SQLite holds apptflow's reference tables only"])
    for table in _COLUMNS:  # dependants first: a view may read another
        _ddl(conn, f"DROP VIEW IF EXISTS {schema}.{table} CASCADE")
    _ddl(conn, _status_function(schema, mapping.statuses))
    for table in _COLUMNS:
        _ddl(conn, f"CREATE VIEW {schema}.{table} AS {mapping.views[table]}")
    for target in TARGETS:
        _ddl(conn, _sync_function(schema, target, mapping.continues if target == "appointments" else None))
    for capture in mapping.capture:
        function = f"{schema}.{_ident('capture_' + capture.table)}"
        _ddl(conn, _capture_function(schema, capture))
        _ddl(conn, f"DROP TRIGGER IF EXISTS apptflow_capture ON {_ident(capture.table)}")
        _ddl(conn, f"CREATE TRIGGER apptflow_capture AFTER INSERT OR UPDATE OR DELETE ON "
                             f"{_ident(capture.table)} FOR EACH ROW EXECUTE FUNCTION {function}()")
    for target in TARGETS:
        watched = ", ".join(f"'{column}'" for column in _WATCHED[target])
        _ddl(conn, f"INSERT INTO {schema}.capture_snapshots (table_name, row_id, doc, gone) "
                   f"SELECT '{target}', v.id, (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(to_jsonb(v)) e "
                   f"WHERE e.key = ANY(ARRAY[{watched}])), false FROM {schema}.{target} v "
                   "ON CONFLICT (table_name, row_id) DO NOTHING")
    _record(conn, mapping)


def _record(conn: Connection, mapping: Mapping) -> None:
    conn.execute(booking_mapping.delete())
    conn.execute(booking_mapping.insert().values(
        name=mapping.name, source=mapping.source, statuses=mapping.statuses, set_status=mapping.set_status,
        read_only=mapping.read_only, absent=mapping.absent))


def _install_mysql(conn: Connection, mapping: Mapping) -> None:
    """The same, on MySQL/MariaDB: apptflow's objects named with its prefix (see :mod:`db.mysql_mapping`).

    Nothing is dropped first: views are replaced in place, routines and triggers only where they changed,
    and the first snapshots are taken before the triggers exist, so that a write while this runs is never
    taken for a new booking."""
    quote = conn.dialect.identifier_preparer.quote  # a view's name, prefixed: the engine reads mapped tables
    if quote("appointments") != own_table(conn, "appointments"):
        raise MappingError(mapping.name, ["the connection does not read a mapping's views: connect with mapped=True "
                                          "([database] mapping set)"])
    mysql_mapping.install_status_function(conn, mapping.statuses)
    for table in mysql_mapping.VIEWS:
        _ddl(conn, f"CREATE OR REPLACE VIEW {quote(table)} AS {mysql_mapping.view_sql(conn, mapping.views[table])}")
    for target in TARGETS:
        mysql_mapping.install_sync_procedure(conn, target, _WATCHED[target],
                                             mapping.continues if target == "appointments" else None)
        _ddl(conn, mysql_mapping.first_snapshots(conn, target, _WATCHED[target]))
    for capture in mapping.capture:
        mysql_mapping.install_capture_triggers(conn, capture.table, capture.targets)


def installed(conn: Connection) -> Installed | None:
    """The mapping the database is installed with, or None for the reference tables."""
    if own_schema(conn) is None and own_prefix(conn) is None:
        return None
    row = conn.execute(select(booking_mapping)).first()
    if row is None:
        return None
    decode = lambda value: json.loads(value) if isinstance(value, str) else (value or {})  # noqa: E731
    return Installed(name=row.name, statuses=decode(row.statuses), set_status=row.set_status,
                     read_only=row.read_only, absent=decode(row.absent))


def set_status(conn: Connection, found: Installed, appointment_id: int, status: str) -> bool:
    """Write *status* (apptflow's code) into the application's own column through the mapping; False if
    the appointment is gone. A status the mapping cannot translate is an error."""
    if found.read_only:
        raise MappingRefusal(f"mapping {found.name} is read-only: {found.read_only}")
    if status not in found.statuses:
        raise MappingRefusal(f"mapping {found.name} has no value for status {status!r} "
                         f"(it knows: {', '.join(sorted(found.statuses))})")
    result = conn.execute(text(found.set_status), {"status": found.statuses[status], "appointment_id": appointment_id})
    return result.rowcount > 0


# --- checking -----------------------------------------------------------------------------------------------

def check(conn: Connection) -> tuple[list[str], list[str]]:
    """What holds and what is wrong with the booking data apptflow reads: (fine, problems)."""
    fine, problems = [], []
    found = installed(conn)
    schema = own_schema(conn)
    for table, columns in _COLUMNS.items():
        try:
            with conn.begin_nested():
                result = conn.exec_driver_sql(f"SELECT * FROM {conn.dialect.identifier_preparer.quote(table)} LIMIT 0")
                present = set(result.keys())
        except Exception as error:  # noqa: BLE001 - reported, whatever the database says
            problems.append(f"{table}: cannot be read: {str(error).splitlines()[0]}")
            continue
        missing = [c for c in columns if c not in present]
        if missing:
            problems.append(f"{table}: lacks the column(s) {', '.join(missing)}")
        else:
            fine.append(f"{table}: every column apptflow reads")
    if found is not None:
        fine.append(f"mapping {found.name}" + (f" (read-only: {found.read_only})" if found.read_only else ""))
        for column, why in sorted(found.absent.items()):
            fine.append(f"{column}: absent ({why}); workflows reading it are refused at add")
        if found.statuses:
            _check_statuses(conn, found, fine, problems)
    if conn.dialect.name == "mysql":
        _check_capture_mysql(conn, fine, problems)
    if schema is not None:
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
    return fine, problems


def _check_capture_mysql(conn: Connection, fine: list[str], problems: list[str]) -> None:
    triggers = capture_triggers(conn)
    fine.append(f"change capture: {len(triggers)} triggers") if triggers else \
        problems.append("no change capture installed: run apptflow db init")
    errors = conn.execute(text(f"SELECT count(*), max(created_at) FROM {own_table(conn, 'capture_errors')}")).one()
    if errors[0]:
        problems.append(f"{errors[0]} change(s) could not be captured, the last at {errors[1]} "
                        f"(see the {own_table(conn, 'capture_errors')} table)")


def _check_statuses(conn: Connection, found: Installed, fine: list[str], problems: list[str]) -> None:
    """The statuses translate both ways: the installed appointments view reads its status through
    ``status_code()``, and each application value the mapping lists reads back there as its code (what
    set_status writes is what the view then shows)."""
    function, reads_through = (_mysql_status_function if conn.dialect.name == "mysql" else _pg_status_function)(conn)
    if not reads_through:
        problems.append(f"appointments: the view does not read its status through {function}(), "
                        "so a status written may read back as another: run apptflow db upgrade")
        return
    wrong = []
    for code, value in sorted(found.statuses.items()):
        back = conn.execute(text(f"SELECT {function}(:value)"), {"value": value}).scalar()
        if back != code:
            wrong.append(f"{code} is written as {value!r}, which reads back as {back!r}")
    if wrong:
        problems.append("statuses: " + "; ".join(wrong) + ": run apptflow db upgrade")
    else:
        fine.append("statuses: each one written reads back as itself ("
                    + ", ".join(f"{code} = {value}" for code, value in sorted(found.statuses.items())) + ")")


def _pg_status_function(conn: Connection) -> tuple[str, bool]:
    """The status function's name, and whether the appointments view depends on it (PostgreSQL knows)."""
    schema = own_schema(conn)
    reads_through = conn.execute(text(
        "SELECT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
        "WHERE d.classid = 'pg_rewrite'::regclass AND r.ev_class = to_regclass(:view) "
        "AND d.refobjid = to_regprocedure(:function))"),
        {"view": f"{schema}.appointments", "function": f"{schema}.{STATUS_FUNCTION}(text)"}).scalar()
    return f"{schema}.{STATUS_FUNCTION}", bool(reads_through)


def _mysql_status_function(conn: Connection) -> tuple[str, bool]:
    """The same on MySQL/MariaDB, which keep a view's definition as text: whether it calls the function."""
    function = own_table(conn, STATUS_FUNCTION)
    definition = conn.execute(text("SELECT view_definition FROM information_schema.views WHERE "
                                   "table_schema = DATABASE() AND table_name = :view"),
                              {"view": own_table(conn, "appointments")}).scalar() or ""
    return function, f"`{function}`(" in definition or f"{function}(" in definition