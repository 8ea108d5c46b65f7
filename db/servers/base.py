"""What every database server object declares and implements.

A server declares its capabilities as class attributes and implements the
operations whose SQL differs on it. An operation a server does not support
raises NotImplementedError naming the server: no server ever falls back to
another server's SQL.
"""

from __future__ import annotations

import datetime as dt
import importlib
from types import ModuleType
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection, Engine, URL
from sqlalchemy.sql import ColumnElement
from sqlalchemy.types import TypeEngine

from db.errors import DatabaseError
from db.options import Timeouts

if TYPE_CHECKING:
    from sqlalchemy import Table

    from db.capture import Watch


class UnsupportedServer(DatabaseError):
    """apptflow cannot run on this database server."""


class UnknownServer(UnsupportedServer):
    """apptflow knows no such database server."""


class Server:
    """One database server apptflow runs on: what it can do, and the SQL that differs on it."""

    label: str  # as people write it, in messages: "PostgreSQL"
    names: tuple[str, ...]  # SQLAlchemy's names for it, in a URL (its backend) and on an engine (its dialect)
    driver: str | None  # the URL's drivername apptflow connects with; None: the one the URL names
    update_returning: bool  # UPDATE ... RETURNING
    notify: bool  # a change wakes a listening daemon at once (else the daemon only polls)
    shared: bool  # several instances may share one database (a leader lock, SKIP LOCKED claims)
    schemas: bool  # apptflow's tables in a schema of their own (else beside the application's)
    table_prefix: bool  # apptflow's tables named with a prefix (the application's namespace is shared)
    comparable_times: bool  # time columns compare as times in SQL (not as the text a writer chose)
    depth_in_session: bool  # a capture trigger reads a set_status chain's depth from the writer's session
    default_poll_interval: str | None = None  # the daemon's default poll on this server, if not the general one
    mapping_installer: str | None = None  # the module that installs a mapping here; None: no mappings

    def __repr__(self) -> str:
        return f"<server {self.label}>"

    def _lacks(self, what: str) -> NotImplementedError:
        return NotImplementedError(f"{self.label} has no {what}")

    # --- connecting -------------------------------------------------------------------------------------

    def normalise_url(self, url: URL) -> URL:
        """*url* with the driver apptflow uses on this server."""
        return url if self.driver is None else url.set(drivername=self.driver)

    def engine(self, url: URL, *, schema: str, prefix: str, busy_timeout: float, timeouts: Timeouts,
               **engine_options) -> Engine:
        """An engine for *url*, set up the way apptflow needs this server."""
        raise self._lacks("engine")

    # --- how values are stored --------------------------------------------------------------------------

    def time_column(self) -> TypeEngine:
        """The column type of a timezone-aware UTC time."""
        raise self._lacks("time column")

    def store_time(self, value: dt.datetime) -> Any:
        """What to write for *value*, an aware UTC datetime."""
        raise self._lacks("time column")

    def date_column(self) -> TypeEngine:
        """The column type of a calendar date."""
        raise self._lacks("date column")

    def store_date(self, value: Any) -> Any:
        """What to write for a calendar date."""
        raise self._lacks("date column")

    def insert_new(self, conn: Connection, table: Table, rows: list[dict[str, Any]], key: str) -> int:
        """Insert *rows*, skipping those whose unique *key* exists; return how many were new."""
        raise self._lacks("idempotent insert")

    # --- change capture ---------------------------------------------------------------------------------

    def install_capture(self, conn: Connection, watches: list[Watch]) -> None:
        """(Re)install the triggers that append a change of a watched table to ``change_events``."""
        raise self._lacks("change capture")

    def capture_triggers(self, conn: Connection) -> list[str]:
        """The names of apptflow's capture triggers in this database."""
        raise self._lacks("list of capture triggers")

    def stamp_depth(self, conn: Connection, depth: int) -> None:
        """Mark the changes this session makes next as caused by a set_status chain of *depth*."""
        raise self._lacks("session setting a capture trigger can read")

    def unstamp_depth(self, conn: Connection) -> None:
        """Changes this session makes next come from outside again."""
        raise self._lacks("session setting a capture trigger can read")

    def listen(self, url: URL, timeouts: Timeouts | None = None):
        """A connection of the driver's own that receives the capture triggers' notifications (with the
        keepalives of *timeouts*: it waits, it sends no statement that could time out)."""
        raise self._lacks("notifications")

    def notify_consumer(self, conn: Connection, table_name: str) -> None:
        """Wake a listening consumer for an event this transaction queued itself (on commit)."""
        raise self._lacks("notifications")

    def drop_installed(self, conn: Connection) -> list[str]:
        """Remove the triggers, routines and views apptflow added (on a server with schemas: the schema
        too, with apptflow's tables); return what went."""
        raise self._lacks("uninstall")

    def among(self, column: ColumnElement, values: Sequence[Any]) -> ColumnElement:
        """*column* is one of *values*: ``IN (…)``, a statement text per number of values."""
        return column.in_(list(values))

    # --- leadership -------------------------------------------------------------------------------------
    # Session-level locks, the server's own, by kind ("partition": leading one; "instance": being alive)
    # and number: they go with the session, so a process that dies gives them up at once.

    def try_lock(self, conn: Connection, kind: str, number: int) -> bool:
        """Take this lock on the connection's session if no other session holds it."""
        raise self._lacks("session locks: it serves one instance")

    def held(self, conn: Connection, kind: str, numbers: Iterable[int]) -> set[int]:
        """Which of these locks this session holds (a round trip: it fails if the session is gone)."""
        raise self._lacks("session locks: it serves one instance")

    def taken(self, conn: Connection, kind: str, numbers: Iterable[int]) -> set[int]:
        """Which of these locks any session holds."""
        raise self._lacks("session locks: it serves one instance")

    def unlock(self, conn: Connection, kind: str, number: int) -> None:
        """Release a lock this session holds."""
        raise self._lacks("session locks: it serves one instance")

    # --- mappings ---------------------------------------------------------------------------------------

    def installer(self) -> ModuleType | None:
        """The module that installs and checks a mapping on this server (None: mappings need another).

        Named, and imported on first use: installers read the shared mapping model and
        apptflow's tables, which themselves ask the servers how to store a time."""
        return None if self.mapping_installer is None else importlib.import_module(self.mapping_installer)


def drop_triggers(conn: Connection, names: list[str]) -> list[str]:
    """Drop the triggers *names* (a server where a trigger's name is the database's); return what went."""
    quote = conn.dialect.identifier_preparer.quote_identifier
    for name in names:
        conn.exec_driver_sql(f"DROP TRIGGER {quote(name)}")
    return [f"trigger {name}" for name in names]
