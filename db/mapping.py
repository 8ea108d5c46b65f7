"""Mappings: apptflow on a booking application's own tables (PostgreSQL, MySQL/MariaDB).

A mapping file (:mod:`db.mapping_file`) gives the reference tables as views
over the application's tables. Installing one (by the server's installer:
:mod:`db.pg_mapping`, :mod:`db.mysql_mapping`) creates the views in apptflow's
schema, where they come first in apptflow's search path (on MySQL/MariaDB:
beside the application's tables, under apptflow's prefix), so every query of
:mod:`db.booking` reads them as it reads the reference tables. Change capture
compares each affected row of a view with the last one seen
(``capture_snapshots``) and records the difference as a change event of the
reference table, in the writer's transaction; it never fails the
application's statement (an error is caught and recorded in ``capture_errors``).
"""

from __future__ import annotations

import json

from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from db.capture import WATCHES
from db.connect import own_prefix, own_schema
from db.mapping_file import (  # noqa: F401 - the model, read here by the rest of apptflow
    COLUMNS, TARGETS, Capture, Installed, Mapping, MappingError, MappingRefusal, load, parse, shipped)
from db.servers import server_for
from db.tables import booking_mapping

_WATCHED = {watch.table: watch.watched for watch in WATCHES if watch.table in TARGETS}


# --- installing ---------------------------------------------------------------------------------------------

def install(conn: Connection, mapping: Mapping) -> None:
    """Create (or replace) the mapping's views, capture functions and triggers, take the first look at every
    row (so that the first change of a row already has its previous values), and record it."""
    _installer(conn, mapping.name).install(conn, mapping, _WATCHED)
    _record(conn, mapping)


def _installer(conn: Connection, name: str):
    """The module that installs and checks a mapping on this connection's server; MappingError where a
    server takes none."""
    server = server_for(conn)
    installer = server.installer()
    if installer is None:
        raise MappingError(name, [f"mappings need PostgreSQL or MySQL/MariaDB: {server.label} holds apptflow's "
                                  "reference tables only"])
    return installer


def _record(conn: Connection, mapping: Mapping) -> None:
    conn.execute(booking_mapping.delete())
    conn.execute(booking_mapping.insert().values(
        name=mapping.name, source=mapping.source, statuses=mapping.statuses, set_status=mapping.set_status,
        read_only=mapping.read_only, absent=mapping.absent))


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
    for table, columns in COLUMNS.items():
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
    installer = server_for(conn).installer()
    if installer is not None:
        installer.check_capture(conn, fine, problems)
    return fine, problems


def _check_statuses(conn: Connection, found: Installed, fine: list[str], problems: list[str]) -> None:
    """The statuses translate both ways: the installed appointments view reads its status through
    ``status_code()``, and each application value the mapping lists reads back there as its code (what
    set_status writes is what the view then shows)."""
    function, reads_through = _installer(conn, found.name).status_function_state(conn)
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
