"""Engines from a database URL, set up the way apptflow needs them on each dialect."""

from __future__ import annotations

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, URL, make_url

from db.prefix import prefixing_preparer

DEFAULT_URL = "sqlite:///apptflow.db"
READ_ONLY = "apptflow_read_only"
# PostgreSQL: the schema of apptflow's own tables, apart from the application's (``public``).
DEFAULT_SCHEMA = "apptflow"
APPLICATION_SCHEMA = "public"
_SCHEMA_OPTION = "apptflow_schema"
# MySQL/MariaDB have no schemas a WordPress host lets one create: apptflow's tables get a prefix instead.
DEFAULT_PREFIX = "apptflow_"
_PREFIX_OPTION = "apptflow_prefix"
# The oldest servers with what apptflow uses: FOR UPDATE SKIP LOCKED for the queues (MySQL 8.0.1, MariaDB
# 10.6), expressions as column defaults (MySQL 8.0.13) and CAST(... AS DOUBLE) in the Booknetic mapping (8.0.17).
MYSQL_MINIMUM, MARIADB_MINIMUM = (8, 0, 17), (10, 6)


class UnsupportedServer(RuntimeError):
    """The database server is too old for apptflow."""


def own_schema(bind: Engine | Connection) -> str | None:
    """The schema apptflow's own tables live in; None on SQLite, which has one namespace."""
    return bind.get_execution_options().get(_SCHEMA_OPTION)


def own_prefix(bind: Engine | Connection) -> str | None:
    """The prefix of apptflow's own table names (MySQL/MariaDB); None elsewhere."""
    return bind.get_execution_options().get(_PREFIX_OPTION)


def own_table(bind: Engine | Connection, name: str) -> str:
    """The name *name*, one of apptflow's own tables, has in the database, for SQL written by hand."""
    return f"{own_prefix(bind) or ''}{name}"


def read_only(engine: Engine) -> Connection:
    """A connection for reading only: on SQLite its transactions do not take the write lock."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def normalise_url(url: str | URL) -> URL:
    """Use psycopg 3 for PostgreSQL and PyMySQL for MySQL/MariaDB, whatever driver the URL names (or none)."""
    url = make_url(url)
    if url.get_backend_name() == "postgresql" and url.get_driver_name() != "psycopg":
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() in ("mysql", "mariadb"):
        url = url.set(drivername="mysql+pymysql")
    return url


def connect(url: str | URL = DEFAULT_URL, *, schema: str = DEFAULT_SCHEMA, prefix: str = DEFAULT_PREFIX,
            busy_timeout: float = 30.0, mapped: bool = False, **engine_options) -> Engine:
    """An engine for *url*: psycopg 3 on PostgreSQL; WAL, foreign keys and write-locking transactions on SQLite.

    On PostgreSQL every connection's ``search_path`` is *schema* (apptflow's own
    tables, and a mapping's views) then ``public`` (the application's tables), so
    that queries name tables unqualified. *busy_timeout* (SQLite): how long a
    transaction waits for another writer's lock before failing with "database is locked".
    On MySQL/MariaDB apptflow's own tables are named with *prefix* (and, when
    *mapped*, so are the views a mapping puts over the application's tables).
    """
    url = normalise_url(url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, busy_timeout, **engine_options)
    if url.get_backend_name() == "mysql":
        return _mysql_engine(url, prefix, mapped, **engine_options)
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


def _mysql_engine(url: URL, prefix: str, mapped: bool, **engine_options) -> Engine:
    """PyMySQL; every session in UTC (the time columns hold UTC), utf8mb4, READ COMMITTED (a queue's
    claims must not take REPEATABLE READ's gap locks), apptflow's table names prefixed."""
    options = {**engine_options.pop("execution_options", {}), _PREFIX_OPTION: prefix}
    engine_options.setdefault("isolation_level", "READ COMMITTED")
    # The pool recycles connections before the server's wait_timeout (8 h by default) ends them.
    engine_options.setdefault("pool_recycle", 3600)
    # No ROLLBACK as a connection goes back to the pool: every use goes through a SQLAlchemy Connection,
    # whose close already ended its transaction, and PyMySQL would send the redundant one every time (a
    # third of an idle daemon's statements).
    engine_options.setdefault("pool_reset_on_return", None)
    engine = create_engine(
        url.update_query_dict({"charset": "utf8mb4"}),
        connect_args={"connect_timeout": 10, "init_command": "SET time_zone = '+00:00'"},
        execution_options=options, **engine_options)
    engine.dialect.preparer = prefixing_preparer(type(engine.dialect.identifier_preparer), prefix, mapped)
    engine.dialect.identifier_preparer = engine.dialect.preparer(engine.dialect)

    @event.listens_for(engine, "first_connect")
    def _check_version(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT VERSION()")
        version = cursor.fetchone()[0]
        cursor.close()
        check_mysql_version(version)

    return engine


def check_mysql_version(version: str) -> None:
    """Refuse a server older than MySQL 8.0.17 or MariaDB 10.6 (see MYSQL_MINIMUM)."""
    numbers = tuple(int(part) for part in version.split("-")[0].split(".")[:3] if part.isdigit())
    mariadb = "mariadb" in version.lower()
    minimum = MARIADB_MINIMUM if mariadb else MYSQL_MINIMUM
    if numbers < minimum:
        name = "MariaDB" if mariadb else "MySQL"
        raise UnsupportedServer(f"{name} {version} is too old for apptflow: it needs {name} "
                                f"{'.'.join(map(str, minimum))} or newer")
