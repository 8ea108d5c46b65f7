"""Shared fixtures: every database test runs on SQLite, on a real PostgreSQL and on a real MariaDB.

The PostgreSQL cluster and the MariaDB server are started once per test session
on loopback, each when a test first needs it. Under CI (``CI`` set to a true
value) a server that cannot start fails the run; elsewhere that part of the
suite is skipped with the reason.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import time

import pytest
from sqlalchemy import text

from db import schema
from db.connect import connect, own_prefix
from db.prefix import OWN_TABLES
from tests.booking import as_written
from tests.mariadb import Server, ServerError
from tests.pgcluster import Cluster, ClusterError

UNDER_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
TEMPLATE = "apptflow_template"
_counter = itertools.count()


def _started(server_type, error_type, name: str):
    """A server of the test session, started; under CI, one that cannot start fails the run."""
    try:
        server = server_type()
        server.start()
    except error_type as error:
        if UNDER_CI:
            pytest.fail(f"{name} could not start under CI: {error}", pytrace=False)
        pytest.skip(f"{name} could not start: {error}")
    return server


@pytest.fixture(scope="session")
def pg_cluster():
    cluster = _started(Cluster, ClusterError, "PostgreSQL")
    # pre-ping: tests restart the cluster under this long-lived engine
    admin = connect(cluster.url(), isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {TEMPLATE}")
    template = connect(cluster.url(TEMPLATE))
    schema.upgrade(template)
    template.dispose()
    cluster.admin = admin
    yield cluster
    admin.dispose()
    cluster.destroy()


@pytest.fixture(scope="session")
def mariadb_server():
    server = _started(Server, ServerError, "MariaDB")
    yield server
    server.destroy()


def _mariadb_database(server) -> str:
    name = f"test_{os.getpid()}_{next(_counter)}"
    server.sql(f"CREATE DATABASE {name}")
    return name


def _pg_database(cluster, template: str):
    name = f"test_{os.getpid()}_{next(_counter)}"
    with cluster.admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
    return name


def _drop_pg_database(cluster, name: str) -> None:
    with cluster.admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def backend(request):
    """The name of the database backend the test runs on."""
    return request.param


@pytest.fixture
def empty_db_url(backend, request, tmp_path):
    """The URL of an empty database (no schema) on the test's backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'apptflow.db'}"
        return
    if backend == "mariadb":
        server = request.getfixturevalue("mariadb_server")
        name = _mariadb_database(server)
        yield server.url(name)
        server.drop_database(name)
        return
    cluster = request.getfixturevalue("pg_cluster")
    name = _pg_database(cluster, "template0")
    yield cluster.url(name)
    _drop_pg_database(cluster, name)


@pytest.fixture
def db_url(backend, request, tmp_path):
    """The URL of a database with apptflow's schema installed, on the test's backend."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'apptflow.db'}"
        engine = connect(url)
        schema.upgrade(engine)
        engine.dispose()
        yield url
        return
    if backend == "mariadb":
        server = request.getfixturevalue("mariadb_server")
        name = _mariadb_database(server)
        engine = connect(server.url(name))
        schema.upgrade(engine)
        engine.dispose()
        yield server.url(name)
        server.drop_database(name)
        return
    cluster = request.getfixturevalue("pg_cluster")
    name = _pg_database(cluster, TEMPLATE)
    yield cluster.url(name)
    _drop_pg_database(cluster, name)


@pytest.fixture
def engine(db_url):
    """An engine on a database with apptflow's schema installed."""
    engine = connect(db_url)
    yield engine
    engine.dispose()


_OWN_NAME = re.compile(r"\b(" + "|".join(sorted(OWN_TABLES, key=len, reverse=True)) + r")\b")


def own_names(bind, statement: str) -> str:
    """*statement* with apptflow's own tables named as in this database: prefixed on MySQL/MariaDB, as an
    admin writes them there (``apptflow_deliveries``); quoted literals are left alone."""
    prefix = own_prefix(bind)
    if not prefix:
        return statement
    parts = re.split(r"('(?:[^']|'')*')", statement)
    return "".join(part if i % 2 else _OWN_NAME.sub(prefix + r"\1", part) for i, part in enumerate(parts))


def utc(value) -> dt.datetime:
    """A time read back with plain SQL as an aware UTC datetime: SQLite gives ISO text, MySQL/MariaDB a naive
    datetime holding UTC, PostgreSQL an aware one."""
    value = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def sql(engine, statement: str, **params):
    """Run one statement the way a booking application (or an admin) would, in its own transaction."""
    with engine.begin() as conn:
        params = {name: as_written(conn, value) for name, value in params.items()}
        result = conn.execute(text(own_names(engine, statement)), params)
        return result.all() if result.returns_rows else None


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05):
    """Poll *predicate* until it holds (for tests of a real daemon's threads); fail with what it last returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            assert value, f"gave up waiting after {timeout}s"
            return value
        time.sleep(interval)
