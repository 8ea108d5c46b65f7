"""What is MySQL/MariaDB's own: apptflow's tables under a prefix, the servers it refuses, the polling default."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect
from sqlalchemy.exc import DBAPIError

from db.connect import connect
from db.prefix import OWN_TABLES, prefixed_names
from db.servers import UnsupportedServer
from db.servers.mysql import check_mysql_version
from db.tables import metadata
from scheduler.cli import main
from scheduler.config import load_config
from tests.booking import insert
from tests.conftest import sql


def test_no_column_index_or_constraint_is_named_like_one_of_apptflows_tables():
    """The prefix is added to every identifier that is an apptflow table's name (db/prefix.py): that is safe
    only while nothing else is named so."""
    names = prefixed_names(mapped=True)
    for table in metadata.sorted_tables:
        assert not {c.name for c in table.columns} & names, table.name
        assert not {i.name for i in table.indexes} & names, table.name
        assert not {c.name for c in table.constraints if c.name} & names, table.name
    assert "alembic_version" in OWN_TABLES and "deliveries" in OWN_TABLES and "appointments" not in OWN_TABLES


@pytest.mark.parametrize("version", ["10.5.23-MariaDB-0+deb11u1", "10.3.39-MariaDB", "5.7.44", "8.0.0-dmr",
                                     "8.0.16"])
def test_a_server_too_old_is_refused_with_what_it_needs(version):
    with pytest.raises(UnsupportedServer, match="too old for apptflow: it needs (MariaDB 10.6|MySQL 8.0.17)"):
        check_mysql_version(version)


@pytest.mark.parametrize("version", ["10.6.16-MariaDB", "10.11.19-MariaDB-0+deb12u1", "11.4.2-MariaDB", "8.0.17",
                                     "8.0.36", "8.4.0", "9.1.0"])
def test_a_server_with_skip_locked_is_accepted(version):
    check_mysql_version(version)


def test_mysql_polls_every_200_ms_unless_configured():
    for url in ("mysql://apptflow@db/site", "mariadb+pymysql://apptflow@db/site"):
        config = load_config(None, environ={"APPTFLOW_DATABASE_URL": url})
        assert config.get("daemon", "poll_interval") == dt.timedelta(milliseconds=200)
    chosen = load_config(None, environ={"APPTFLOW_DATABASE_URL": "mysql://a@db/site",
                                        "APPTFLOW_DAEMON_POLL_INTERVAL": "2s"})
    assert chosen.get("daemon", "poll_interval") == dt.timedelta(seconds=2)
    assert load_config(None, environ={}).get("daemon", "poll_interval") == dt.timedelta(seconds=1)


def test_the_prefix_is_configurable_and_uninstall_removes_what_it_named(empty_db_url, backend):
    if backend != "mariadb":
        pytest.skip("the prefix is MySQL/MariaDB's")
    environment = {"APPTFLOW_DATABASE_URL": empty_db_url, "APPTFLOW_DATABASE_PREFIX": "flow_"}
    result = CliRunner().invoke(main, ["db", "init"], env=environment)
    assert result.exit_code == 0, result.output
    engine = connect(empty_db_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"flow_workflows", "flow_deliveries", "flow_change_events", "flow_alembic_version"} <= tables
        assert {"appointments", "customers"} <= tables and not any(t.startswith("apptflow_") for t in tables)
        result = CliRunner().invoke(main, ["db", "uninstall", "--yes"], env=environment)
        assert result.exit_code == 0, result.output
        assert set(inspect(engine).get_table_names()) == {"appointments", "customers", "services", "staff",
                                                         "locations"}
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW TRIGGERS").all() == []
    finally:
        engine.dispose()


def test_every_command_refuses_a_server_too_old_in_one_line(db_url, backend, monkeypatch):
    if backend != "mariadb":
        pytest.skip("the version floor is MySQL/MariaDB's")
    import db.servers.mysql

    def too_old(version):
        check_mysql_version("10.5.23-MariaDB")
    monkeypatch.setattr(db.servers.mysql, "check_mysql_version", too_old)  # as if the server said 10.5
    for command in (["status"], ["db", "init"], ["workflow", "list"]):
        result = CliRunner().invoke(main, command, env={"APPTFLOW_DATABASE_URL": db_url})
        assert result.exit_code == 1, (command, result.output)
        assert result.output.strip().splitlines() == [
            "Error: MariaDB 10.5.23-MariaDB is too old for apptflow: it needs MariaDB 10.6 or newer"], command


def test_a_database_named_like_one_of_apptflows_tables_is_still_itself(backend, request):
    """Only table names get the prefix: a database called ``workflows`` keeps its name."""
    if backend != "mariadb":
        pytest.skip("the prefix is MySQL/MariaDB's")
    server = request.getfixturevalue("mariadb_server")
    server.drop_database("workflows")
    server.sql("CREATE DATABASE workflows")
    try:
        environment = {"APPTFLOW_DATABASE_URL": server.url("workflows")}
        for command in (["db", "init"], ["db", "init"], ["db", "check"], ["workflow", "list"]):
            result = CliRunner().invoke(main, command, env=environment)
            assert result.exit_code == 0, (command, result.output)
        engine = connect(server.url("workflows"))
        try:
            assert {"apptflow_workflows", "workflows"} & set(inspect(engine).get_table_names()) == {
                "apptflow_workflows"}
        finally:
            engine.dispose()
    finally:
        server.drop_database("workflows")


def test_a_change_of_case_alone_is_a_change(engine, backend):
    """MySQL's default collation takes 'en_us' and 'en_US' for equal; capture compares the bytes."""
    if backend != "mariadb":
        pytest.skip("the collation is MySQL/MariaDB's")
    customer = insert(engine, "customers", first_name="Ada", locale="en_us")
    sql(engine, "UPDATE customers SET locale = 'en_US' WHERE id = :id", id=customer)
    assert [op for (op,) in sql(engine, "SELECT op FROM change_events WHERE table_name = 'customers' "
                                        "ORDER BY id")] == ["INSERT", "UPDATE"]


@pytest.mark.parametrize("prefix, application", [("wp_", "wp_"), ("wp_apptflow_", "wp_"), ("app", "apptflow_x_")])
def test_apptflows_prefix_may_not_overlap_the_applications(prefix, application):
    result = CliRunner().invoke(main, ["config", "check"], env={"APPTFLOW_DATABASE_PREFIX": prefix,
                                                                "APPTFLOW_DATABASE_APPLICATION_PREFIX": application})
    assert result.exit_code == 1 and f"[database] prefix: {prefix!r} overlaps application_prefix" in result.output


def test_the_chain_depth_of_a_set_status_never_reaches_the_next_write_on_its_connection(db_url, backend):
    """MySQL keeps the depth in a session variable, which outlives the transaction on a pooled connection."""
    if backend != "mariadb":
        pytest.skip("the session variable is MySQL/MariaDB's")
    from db.booking import set_appointment_status
    from tests.booking import book, seed

    engine = connect(db_url, pool_size=1, max_overflow=0)  # one connection: the next write reuses it
    try:
        appointment = book(engine, seed(engine), starts_at="2026-12-01T10:00:00+00:00",
                           ends_at="2026-12-01T11:00:00+00:00")
        with engine.begin() as conn:
            assert set_appointment_status(conn, appointment, "approved", depth=3)
        with pytest.raises(DBAPIError):  # a status too long for its column: the write fails
            with engine.begin() as conn:
                set_appointment_status(conn, appointment, "x" * 300, depth=4)
        sql(engine, "UPDATE appointments SET status = 'canceled' WHERE id = :id", id=appointment)
        depths = sql(engine, "SELECT depth FROM change_events WHERE table_name = 'appointments' ORDER BY id")
        assert depths == [(0,), (3,), (0,)]
    finally:
        engine.dispose()
