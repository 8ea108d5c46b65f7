"""Engines from a database URL, set up by the URL's server (see :mod:`db.servers`)."""

from __future__ import annotations

from sqlalchemy.engine import Engine, URL, make_url

from db.options import (  # noqa: F401 - where the rest of apptflow finds them
    APPLICATION_SCHEMA, DEFAULT_PREFIX, DEFAULT_SCHEMA, Timeouts, own_prefix, own_schema, own_table, read_only)
from db.prefix import prefixing_preparer
from db.servers import server_of

DEFAULT_URL = "sqlite:///apptflow.db"


def connect(url: str | URL = DEFAULT_URL, *, schema: str = DEFAULT_SCHEMA, prefix: str = DEFAULT_PREFIX,
            busy_timeout: float = 30.0, mapped: bool = False, timeouts: Timeouts = Timeouts(),
            **engine_options) -> Engine:
    """An engine for *url*, set up by its server: psycopg 3 on PostgreSQL; WAL, foreign keys and
    write-locking transactions on SQLite; PyMySQL in UTC on MySQL/MariaDB.

    On PostgreSQL every connection's ``search_path`` is *schema* (apptflow's own
    tables, and a mapping's views) then ``public`` (the application's tables), so
    that queries name tables unqualified. *busy_timeout* (SQLite): how long a
    transaction waits for another writer's lock before failing with "database is locked".
    On MySQL/MariaDB apptflow's own tables are named with *prefix* (and, when
    *mapped*, so are the views a mapping puts over the application's tables).
    *timeouts*: how soon a connection whose server stopped answering is given up, and
    how long a statement may run (PostgreSQL and MySQL/MariaDB; see :class:`db.options.Timeouts`).
    An unknown server is refused: :class:`db.servers.UnknownServer`.
    """
    url = make_url(url)
    server = server_of(url)
    engine = server.engine(server.normalise_url(url), schema=schema, prefix=prefix, busy_timeout=busy_timeout,
                           timeouts=timeouts, **engine_options)
    if server.table_prefix:
        engine.dialect.preparer = prefixing_preparer(type(engine.dialect.identifier_preparer), prefix, mapped)
        engine.dialect.identifier_preparer = engine.dialect.preparer(engine.dialect)
    return engine
