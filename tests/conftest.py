"""Shared fixtures: every database test runs on SQLite and on a real PostgreSQL.

The PostgreSQL cluster is started once per test session on loopback. Under CI
(``CI`` set to a true value) a cluster that cannot start fails the run;
elsewhere the PostgreSQL half of the suite is skipped with the reason.
"""

from __future__ import annotations

import itertools
import os
import time

import pytest
from sqlalchemy import text

from db import schema
from db.connect import connect
from tests.pgcluster import Cluster, ClusterError

UNDER_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
TEMPLATE = "apptflow_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster():
    try:
        cluster = Cluster()
        cluster.start()
    except ClusterError as error:
        if UNDER_CI:
            pytest.fail(f"PostgreSQL could not start under CI: {error}", pytrace=False)
        pytest.skip(f"PostgreSQL could not start: {error}")
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


def _pg_database(cluster, template: str):
    name = f"test_{os.getpid()}_{next(_counter)}"
    with cluster.admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
    return name


def _drop_pg_database(cluster, name: str) -> None:
    with cluster.admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    """The name of the database backend the test runs on."""
    return request.param


@pytest.fixture
def empty_db_url(backend, request, tmp_path):
    """The URL of an empty database (no schema) on the test's backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'apptflow.db'}"
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


def sql(engine, statement: str, **params):
    """Run one statement the way a booking application would, in its own transaction."""
    with engine.begin() as conn:
        result = conn.execute(text(statement), params)
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
