"""SQLite: one instance, one file, apptflow's reference tables only.

Times are ISO 8601 text (whatever spelling the booking application wrote: it
is parsed, never compared as text), capture triggers are plain SQL triggers,
and there is neither a leader lock nor a notification: one daemon polls.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, create_engine, event, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine, URL
from sqlalchemy.types import TypeEngine

from db.options import READ_ONLY, Timeouts
from db.servers.base import Server, drop_triggers

if TYPE_CHECKING:
    from sqlalchemy import Table

    from db.capture import Watch


class SQLite(Server):
    label = "SQLite"
    names = ("sqlite",)
    driver = None
    update_returning = True
    notify = False
    shared = False
    schemas = False
    table_prefix = False
    comparable_times = False
    depth_in_session = False  # triggers cannot read a session setting: see db.booking.set_appointment_status

    def engine(self, url: URL, *, schema: str, prefix: str, busy_timeout: float, timeouts: Timeouts,
               **engine_options) -> Engine:
        """WAL, foreign keys, and transactions that take the write lock at their start (no network: the
        *timeouts* do not apply)."""
        engine = create_engine(
            url, connect_args={"timeout": busy_timeout, "check_same_thread": False}, **engine_options
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record):
            # Take transaction control away from the sqlite3 module: SQLAlchemy's
            # "begin" event below emits BEGIN IMMEDIATE, so a transaction that will
            # write holds the write lock from its start and never fails on upgrading
            # a read lock (which busy_timeout cannot wait out).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            if url.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            # Readers (see read_only) begin deferred: in WAL mode they never block the writers.
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

        return engine

    def time_column(self) -> TypeEngine:
        return String(40)

    def store_time(self, value: dt.datetime) -> Any:
        return value.isoformat()

    def date_column(self) -> TypeEngine:
        return String(40)

    def store_date(self, value: Any) -> Any:
        return value.isoformat() if isinstance(value, dt.date) else str(value)

    def insert_new(self, conn: Connection, table: Table, rows: list[dict[str, Any]], key: str) -> int:
        """``ON CONFLICT DO NOTHING ... RETURNING``: only the new rows come back."""
        statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=[key]).returning(table.c.id)
        return len(conn.execute(statement, rows).all())

    def install_capture(self, conn: Connection, watches: list[Watch]) -> None:
        for statement in (s for watch in watches for s in _statements(watch)):
            conn.exec_driver_sql(statement)

    def capture_triggers(self, conn: Connection) -> list[str]:
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE :pattern ESCAPE '\\' ORDER BY name"
        return list(conn.execute(text(query), {"pattern": "apptflow\\_capture\\_%"}).scalars())

    def drop_installed(self, conn: Connection) -> list[str]:
        """The capture triggers: SQLite has no mapping, routine or view of apptflow's."""
        return drop_triggers(conn, self.capture_triggers(conn))


def _doc(row: str, columns: tuple[str, ...]) -> str:
    pairs = ", ".join(f"'{column}', {row}.{column}" for column in columns)
    return f"json_object({pairs})"


def _statements(watch: Watch) -> list[str]:
    """Three triggers, one per operation, each dropped first (SQLite's DDL is transactional)."""
    recorded = watch.recorded_sqlite or watch.watched
    table = watch.table
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in watch.watched)
    insert = (
        "INSERT INTO change_events (table_name, row_id, op, old, new) "
        f"VALUES ('{table}', {{row}}.id, '{{op}}', {{old}}, {{new}});"
    )
    bodies = {
        "insert": ("AFTER INSERT", "", insert.format(
            row="NEW", op="INSERT", old="NULL", new=_doc("NEW", recorded))),
        "update": (f"AFTER UPDATE OF {', '.join(watch.watched)}", f"WHEN {changed}", insert.format(
            row="NEW", op="UPDATE", old=_doc("OLD", recorded), new=_doc("NEW", recorded))),
        "delete": ("AFTER DELETE", "", insert.format(
            row="OLD", op="DELETE", old=_doc("OLD", recorded), new="NULL")),
    }
    statements = []
    for op, (timing, when, body) in bodies.items():
        name = f"apptflow_capture_{table}_{op}"
        statements.append(f"DROP TRIGGER IF EXISTS {name}")
        statements.append(
            f"CREATE TRIGGER {name} {timing} ON {table} FOR EACH ROW {when} BEGIN {body} END"
        )
    return statements


SERVER = SQLite()
