"""Installing apptflow next to an application's tables, and removing it: the application's schema and data
are left exactly as they were, and a failing capture never fails the application's own statement."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

from db.connect import connect
from scheduler.daemon import Daemon
from tests.pipeline import make_config
from db.tables import BOOKING_TABLES, metadata
from scheduler.cli import main
from tests.booking import book, insert, seed
from tests.conftest import sql

START, END = "2026-12-01T10:00:00+00:00", "2026-12-01T10:45:00+00:00"


def _application(url: str) -> dict[str, int]:
    """The booking application's own tables and rows, made before apptflow is installed."""
    app = connect(url, schema="public")
    with app.begin() as conn:
        metadata.create_all(conn, tables=BOOKING_TABLES)
    ids = seed(app)
    ids["appointment"] = book(app, ids, starts_at=START, ends_at=END, status="approved")
    app.dispose()
    return ids


def _cli(url: str, *args: str, schema: str = "apptflow"):
    result = CliRunner().invoke(main, list(args),
                                env={"APPTFLOW_DATABASE_URL": url, "APPTFLOW_DATABASE_SCHEMA": schema})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("schema", ["apptflow", "flow"])
def test_install_then_uninstall_leaves_the_applications_database_as_it_was(pg_cluster, empty_db_url, backend,
                                                                           schema):
    if backend != "postgresql":
        pytest.skip("pg_dump compares PostgreSQL databases")
    ids = _application(empty_db_url)
    database = empty_db_url.rsplit("/", 1)[1]
    before = pg_cluster.dump(database)

    _cli(empty_db_url, "db", "init", schema=schema)
    engine = connect(empty_db_url, schema=schema)
    assert "workflows" in inspect(engine).get_table_names(schema=schema)
    # In the application's schema, nothing new but the triggers.
    assert set(inspect(engine).get_table_names(schema="public")) == {t.name for t in BOOKING_TABLES}
    assert sql(engine, "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                       "WHERE n.nspname = 'public'") == [(0,)]
    # The application goes on writing while apptflow is installed, and its changes are captured.
    sql(engine, "UPDATE appointments SET status = 'canceled' WHERE id = :id", id=ids["appointment"])
    sql(engine, "UPDATE appointments SET status = 'approved' WHERE id = :id", id=ids["appointment"])
    assert sql(engine, "SELECT op, new->>'status' FROM change_events ORDER BY id") == [
        ("UPDATE", "canceled"), ("UPDATE", "approved")]
    engine.dispose()

    output = _cli(empty_db_url, "db", "uninstall", "--yes", schema=schema)
    assert "removed trigger apptflow_capture_appointments on appointments" in output
    assert f"removed schema {schema}" in output
    assert pg_cluster.dump(database) == before
    assert "was not installed" in _cli(empty_db_url, "db", "uninstall", "--yes", schema=schema)


def test_uninstall_on_sqlite_keeps_the_booking_tables_and_their_rows(empty_db_url, backend):
    if backend != "sqlite":
        pytest.skip("the PostgreSQL case is compared whole with pg_dump")
    ids = _application(empty_db_url)
    _cli(empty_db_url, "db", "init")
    output = _cli(empty_db_url, "db", "uninstall", "--yes")
    assert "removed trigger apptflow_capture_appointments_update" in output and "removed table deliveries" in output
    engine = connect(empty_db_url)
    assert set(inspect(engine).get_table_names()) == {t.name for t in BOOKING_TABLES}
    assert sql(engine, "SELECT id, status FROM appointments") == [(ids["appointment"], "approved")]
    sql(engine, "UPDATE appointments SET status = 'canceled'")  # no trigger left to write anywhere
    engine.dispose()


def test_uninstall_asks_first(db_url):
    result = CliRunner().invoke(main, ["db", "uninstall"], input="n\n", env={"APPTFLOW_DATABASE_URL": db_url})
    assert result.exit_code == 1 and "Aborted" in result.output
    engine = connect(db_url)
    assert sql(engine, "SELECT count(*) FROM deliveries") == [(0,)]  # still there
    engine.dispose()


def test_a_failing_capture_never_fails_the_applications_statement_and_is_recorded(engine, db_url, backend,
                                                                                   caplog):
    if backend != "postgresql":
        pytest.skip("SQLite triggers cannot catch an error; SQLite is apptflow's own database, not an application's")
    ids = seed(engine)
    sql(engine, "ALTER TABLE change_events ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
    appointment = insert(engine, "appointments", customer_id=ids["customer"], service_id=ids["service"],
                         staff_id=ids["staff"], location_id=ids["location"], starts_at=START, ends_at=END)
    assert sql(engine, "SELECT id FROM appointments WHERE id = :id", id=appointment) == [(appointment,)]
    [(table, op, status, error)] = sql(engine, "SELECT table_name, op, row_doc->>'status', error FROM capture_errors")
    assert (table, op, status) == ("appointments", "INSERT", "pending")
    assert "refuse_all" in error and "SQLSTATE 23514" in error
    # apptflow status and the daemon say so: once for those recorded before it started, then for each new one.
    assert "capture:     1 change(s) could not be captured" in _cli(db_url, "status")
    daemon = Daemon(make_config(db_url), engine=engine)
    daemon.stopping.set()
    with caplog.at_level(logging.WARNING, logger="scheduler.daemon"):
        daemon._housekeep()
        daemon._housekeep()
        sql(engine, "UPDATE appointments SET status = 'approved' WHERE id = :id", id=appointment)
        daemon._housekeep()
    lost = [(r.levelname, r.getMessage()) for r in caplog.records if "could not be captured" in r.getMessage()]
    assert [level for level, _ in lost] == ["WARNING", "ERROR"]
    assert "1 change(s)" in lost[0][1] and "recorded before this start" in lost[0][1]
    assert "1 change(s)" in lost[1][1] and "refuse_all" in lost[1][1]
    # With apptflow's tables gone altogether, the application still writes.
    sql(engine, "DROP SCHEMA apptflow CASCADE")
    sql(engine, "UPDATE appointments SET status = 'approved' WHERE id = :id", id=appointment)


def test_db_check_on_the_reference_tables(db_url, backend):
    output = _cli(db_url, "db", "check")
    assert "ok: appointments: every column apptflow reads" in output
    if backend == "postgresql":
        assert "ok: change capture on appointments, customers, workflow_actions, workflows" in output
    engine = connect(db_url)
    sql(engine, "ALTER TABLE locations DROP COLUMN image_url")
    engine.dispose()
    result = CliRunner().invoke(main, ["db", "check"], env={"APPTFLOW_DATABASE_URL": db_url})
    assert result.exit_code == 1 and "problem: locations: lacks the column(s) image_url" in result.output
