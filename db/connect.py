"""Engines from a database URL, set up the way apptflow needs them on each dialect."""

from __future__ import annotations

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, URL, make_url

DEFAULT_URL = "sqlite:///apptflow.db"
READ_ONLY = "apptflow_read_only"
# PostgreSQL: the schema of apptflow's own tables, apart from the application's (``public``).
DEFAULT_SCHEMA = "apptflow"
APPLICATION_SCHEMA = "public"
_SCHEMA_OPTION = "apptflow_schema"


def own_schema(bind: Engine | Connection) -> str | None:
    """The schema apptflow's own tables live in; None on SQLite, which has one namespace."""
    return bind.get_execution_options().get(_SCHEMA_OPTION)


def read_only(engine: Engine) -> Connection:
    """A connection for reading only: on SQLite its transactions do not take the write lock."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def normalise_url(url: str | URL) -> URL:
    """Use psycopg 3 for PostgreSQL whatever driver the URL names (or none)."""
    url = make_url(url)
    if url.get_backend_name() == "postgresql" and url.get_driver_name() != "psycopg":
        url = url.set(drivername="postgresql+psycopg")
    return url


def connect(url: str | URL = DEFAULT_URL, *, schema: str = DEFAULT_SCHEMA, busy_timeout: float = 30.0,
            **engine_options) -> Engine:
    """An engine for *url*: psycopg 3 on PostgreSQL; WAL, foreign keys and write-locking transactions on SQLite.

    On PostgreSQL every connection's ``search_path`` is *schema* (apptflow's own
    tables, and a mapping's views) then ``public`` (the application's tables), so
    that queries name tables unqualified. *busy_timeout* (SQLite): how long a
    transaction waits for another writer's lock before failing with "database is locked".
    """
    url = normalise_url(url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, busy_timeout, **engine_options)
    # connect_timeout: a server that accepts but never answers must not hang a thread forever.
    # No pre-ping: it costs a round trip on every checkout, a third of a short transaction. A
    # connection the server dropped fails its next statement instead, SQLAlchemy then discards
    # every connection of the pool made before, and the daemon's loops retry.
    options = {**engine_options.pop("execution_options", {}), _SCHEMA_OPTION: schema}
    search_path = f"-c search_path={schema},{APPLICATION_SCHEMA}"
    return create_engine(url, connect_args={"connect_timeout": 10, "options": search_path},
                         execution_options=options, **engine_options)


def _sqlite_engine(url: URL, busy_timeout: float, **engine_options) -> Engine:
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
