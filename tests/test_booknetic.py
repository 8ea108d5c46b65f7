"""apptflow attached to a WordPress site's Booknetic tables through the shipped mapping (MariaDB only).

Booknetic's tables come from tests/booknetic/schema.sql (their names and columns as Booknetic 4.4.1's code
reads and writes them); bookings, reschedules and cancellations are written with plain SQL the way
Booknetic writes them (Unix seconds in integer columns, prices as rows of bkntc_appointment_prices, a
customer's creation as date text, the site's time zone in WordPress's options), and nothing of apptflow's is
called but its CLI and its pipeline.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import text

from db.connect import connect
from engine.document import load_yaml
from scheduler.cli import main
from scheduler.daemon import Daemon
from tests.conftest import _mariadb_database, sql, utc, wait_until
from tests.pipeline import add_workflow, email, make_config
from tests.test_time_offset import Harness

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
START = dt.datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
SCHEMA = Path(__file__).with_name("booknetic") / "schema.sql"


def unix(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def site(server) -> str:
    """A new database holding a WordPress site's Booknetic tables, with a location, a service, a staff member
    and a customer as Booknetic's admin panel creates them."""
    url = server.url(_mariadb_database(server))
    app = connect(url, prefix="unused_")  # the site's own session: apptflow's names play no part
    with app.begin() as conn:
        statements = "\n".join(line for line in SCHEMA.read_text().splitlines() if not line.startswith("--"))
        for statement in filter(str.strip, statements.split(";")):
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql("INSERT INTO wp_options (option_name, option_value) VALUES "
                             "('timezone_string', 'Europe/Paris')")
        conn.exec_driver_sql("INSERT INTO wp_bkntc_locations (id, name, address, phone_number, notes, latitude, "
                             "longitude) VALUES (1, 'Opéra', '12 rue de la Paix, Paris', '+33140000000', "
                             "'Second floor', '48.8708', '2.332401')")
        conn.exec_driver_sql("INSERT INTO wp_bkntc_service_categories (id, name) VALUES (4, 'Hair')")
        conn.exec_driver_sql("INSERT INTO wp_bkntc_services (id, name, price, category_id, duration, buffer_before, "
                             "notes, color) VALUES (10, 'Haircut', 30, 4, 45, 15, 'Wash included', '#53d56c')")
        conn.exec_driver_sql("INSERT INTO wp_bkntc_staff (id, name, email, phone_number, about) VALUES "
                             "(1, 'Sam Staff', 'sam@salon.test', '+33612345678', 'Colourist since 2010')")
        conn.exec_driver_sql("INSERT INTO wp_bkntc_customers (id, first_name, last_name, phone_number, email, "
                             "birthdate, notes, created_at) VALUES (7, 'Ada', 'Lovelace', '+447700900123', "
                             "'ada@example.test', '1990-12-10', 'Prefers mornings', '2025-11-23 09:00:00')")
    app.dispose()
    return url


def cli(url: str, *args: str, code: int = 0, **env: str) -> str:
    environment = {"APPTFLOW_DATABASE_URL": url, "APPTFLOW_DATABASE_MAPPING": "booknetic", **env}
    result = CliRunner().invoke(main, list(args), env=environment)
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def booknetic(backend, request):
    if backend != "mariadb":
        pytest.skip("Booknetic runs on MySQL/MariaDB")
    server = request.getfixturevalue("mariadb_server")
    url = site(server)
    cli(url, "db", "init")
    yield url
    server.drop_database(url.rsplit("/", 1)[1])


def booknetic_write(url: str, statement: str, **params) -> None:
    """One write as Booknetic's PHP makes it: its own session, in a time zone other than UTC, no apptflow."""
    app = connect(url, prefix="unused_")
    with app.begin() as conn:
        conn.exec_driver_sql("SET time_zone = '+05:30'")  # not UTC, as a host may have it
        conn.execute(text(statement), params)
    app.dispose()


def book(url: str, *, start: dt.datetime = START, minutes: int = 45, status: str = "approved",
         tenant: int | None = None, customer: int = 7, locale: str = "fr_FR",
         client_timezone: str = "America/New_York") -> int:
    """A booking as Booknetic's AppointmentService writes it: the appointment (Unix seconds, busy_from and
    busy_to with the buffers) and its price rows, in one transaction."""
    app = connect(url, prefix="unused_")
    with app.begin() as conn:
        conn.exec_driver_sql("SET time_zone = '+05:30'")  # not UTC, as a host may have it
        appointment = conn.execute(text(
            "INSERT INTO wp_bkntc_appointments (location_id, service_id, staff_id, customer_id, starts_at, ends_at, "
            "busy_from, busy_to, status, weight, payment_method, payment_status, paid_amount, note, locale, "
            "client_timezone, created_at, tenant_id) VALUES (1, 10, 1, :customer, :start, :end, :busy_from, :end, "
            ":status, 2, 'local', 'not_paid', 5, 'Short at the back', :locale, :client_timezone, :created, :tenant)"),
            {"start": unix(start), "end": unix(start) + minutes * 60, "busy_from": unix(start) - 15 * 60,
             "status": status, "created": unix(NOW), "tenant": tenant, "customer": customer, "locale": locale,
             "client_timezone": client_timezone}).lastrowid
        conn.execute(text(
            "INSERT INTO wp_bkntc_appointment_prices (appointment_id, unique_key, price, negative_or_positive) "
            "VALUES (:a, 'service_price', 30, 1), (:a, 'discount', 3, -1)"), {"a": appointment})
    app.dispose()
    return appointment


@pytest.fixture
def harness(booknetic):
    engine = connect(booknetic, mapped=True)
    harness = Harness(engine, make_config(booknetic, APPTFLOW_DATABASE_MAPPING="booknetic"))
    yield engine, harness
    harness.close()
    engine.dispose()


def test_a_booking_fires_with_booknetics_data_in_the_keywords(harness, booknetic):
    engine, pipeline = harness
    add_workflow(engine, email("confirm", {"type": "appointment_created"},
                               "{customer_first_name}: {service_name} with {staff_name} on {appointment_date_time}",
                               "{appointment_notes} at {location_name}, {appointment_start_time_client} for you; "
                               "{appointment_duration}, {appointment_buffer_before} before; {service_category_name};"
                               " {appointment_sum_price} - {appointment_discount_price}, paid "
                               "{appointment_paid_price} ({appointment_payment_method}); "
                               "{appointment_total_attendees} people; {customer_birthday}; {appointment_status}"))
    booking = book(booknetic)
    pipeline.run(NOW)
    [message] = pipeline.sent("smtp")
    # 14:00 UTC is 15:00 in Paris, the site's time zone, and 9:00 for the customer in New York; the
    # message is in the booking's language (French: a decimal comma).
    assert message.subject == "Ada: Haircut with Sam Staff on 25 nov. 2026, 15:00"
    assert message.text == ("Short at the back at Opéra, 09:00 for you; 45m, 15m before; Hair; 27,00 - 3,00, paid "
                            "5,00 (local); 2 people; 10 déc. 1990; Approuvé")
    assert message.to == ("ada@example.test",)
    assert sql(engine, "SELECT row_id, op FROM change_events WHERE table_name = 'appointments' ORDER BY id") == [
        (booking, "INSERT")]


def test_a_reminder_follows_a_reschedule_and_goes_with_a_cancellation(harness, booknetic):
    engine, pipeline = harness
    moved = add_workflow(engine, email("moved", {"type": "appointment_rescheduled"},
                                       "Moved from {old_appointment_date_time} to {appointment_date_time}"))
    reminder = add_workflow(engine, email("reminder", {"type": "appointment_starts", "offset": "-1h"}, "Soon",
                                          filters={"statuses": ["approved"]}))
    booking = book(booknetic)
    pipeline.run(NOW)
    assert pipeline.jobs() == {f"wf:{reminder}:appt:{booking}": START - dt.timedelta(hours=1)}

    later = START + dt.timedelta(days=1, hours=2)
    booknetic_write(booknetic, "UPDATE wp_bkntc_appointments SET starts_at = :s, ends_at = :e, busy_from = :s, "
                    "busy_to = :e WHERE id = :id", s=unix(later), e=unix(later) + 2700, id=booking)
    pipeline.run(NOW)
    assert [m.subject for m in pipeline.sent("smtp")] == ["Moved from 25 nov. 2026, 15:00 to 26 nov. 2026, 17:00"]
    assert sql(engine, "SELECT subject_id FROM deliveries WHERE workflow_id = :w", w=moved) == [(booking,)]
    assert pipeline.jobs() == {f"wf:{reminder}:appt:{booking}": later - dt.timedelta(hours=1)}

    booknetic_write(booknetic, "UPDATE wp_bkntc_appointments SET status = 'canceled' WHERE id = :id", id=booking)
    pipeline.run(NOW)
    assert pipeline.jobs() == {}


def test_set_status_writes_booknetics_own_status(harness, booknetic):
    engine, pipeline = harness
    add_workflow(engine, {"name": "approve", "trigger": {"type": "appointment_created"},
                          "actions": [{"type": "set_status", "status": "approved"}]})
    approved = add_workflow(engine, email("approved", {"type": "appointment_status_changed", "to": ["approved"]},
                                          "{old_status} → {new_status}"))
    booking = book(booknetic, status="pending")
    live = Harness(engine, make_config(booknetic, APPTFLOW_DATABASE_MAPPING="booknetic",
                                       APPTFLOW_DAEMON_DRY_RUN="false", APPTFLOW_SMTP_PORT="1"))
    try:
        live.run(NOW)
    finally:
        live.close()
    assert sql(engine, "SELECT status FROM wp_bkntc_appointments WHERE id = :id", id=booking) == [("approved",)]
    assert sql(engine, "SELECT workflow_id, depth FROM deliveries WHERE workflow_id = :w", w=approved) == [
        (approved, 1)]


def test_booknetics_writes_never_fail_when_capture_cannot_record(harness, booknetic):
    engine, _ = harness
    sql(engine, "RENAME TABLE change_events TO change_events_away")
    try:
        booking = book(booknetic)  # Booknetic's own insert goes through
    finally:
        sql(engine, "RENAME TABLE change_events_away TO change_events")
    assert sql(engine, "SELECT id FROM wp_bkntc_appointments") == [(booking,)]
    errors = sql(engine, "SELECT table_name, op, error FROM capture_errors")
    assert errors and all(table == "wp_bkntc_appointments" and op == "INSERT" and "change_events" in error
                          for table, op, error in errors), errors
    assert "could not be captured" in cli(booknetic, "db", "check", code=1)


def test_a_capture_at_commit_is_refused_on_mariadb(booknetic, tmp_path):
    document = yaml.safe_load((Path(__file__).parents[1] / "db" / "mappings" / "booknetic.yaml").read_text())
    document["capture"][0]["at_commit"] = "NEW.status = 'canceled'"
    mapping = tmp_path / "booknetic-at-commit.yaml"
    mapping.write_text(yaml.safe_dump(document))
    output = cli(booknetic, "db", "upgrade", code=1, APPTFLOW_DATABASE_MAPPING=str(mapping))
    assert "capture: at_commit needs PostgreSQL (MySQL/MariaDB has no trigger that runs at commit)" in output


def test_db_check_reads_booknetics_statuses_back_and_reports_a_function_edited_by_hand(harness, booknetic):
    engine, _ = harness
    output = cli(booknetic, "db", "check")
    assert "statuses: each one written reads back as itself (approved = approved" in output
    assert "change capture: " in output and "problem" not in output
    sql(engine, "DROP FUNCTION apptflow_status_code")
    sql(engine, "CREATE FUNCTION apptflow_status_code(value VARCHAR(255)) RETURNS VARCHAR(255) DETERMINISTIC "
                "NO SQL RETURN CASE value WHEN 'canceled' THEN 'rejected' ELSE value END")
    assert "canceled is written as 'canceled', which reads back as 'rejected'" in cli(booknetic, "db", "check",
                                                                                      code=1)
    cli(booknetic, "db", "upgrade")
    assert "problem" not in cli(booknetic, "db", "check")


def test_an_upgrade_leaves_unchanged_triggers_and_routines_in_place(booknetic):
    """MySQL has no CREATE OR REPLACE TRIGGER: one dropped and created again would miss the writes between."""
    engine = connect(booknetic, mapped=True)
    try:
        def installed():
            return (sql(engine, "SELECT trigger_name, created FROM information_schema.triggers "
                                "WHERE trigger_schema = DATABASE() ORDER BY 1"),
                    sql(engine, "SELECT routine_name, created FROM information_schema.routines "
                                "WHERE routine_schema = DATABASE() ORDER BY 1"))
        before = installed()
        time.sleep(1.1)  # CREATED has whole seconds: a trigger made again would show a later one
        cli(booknetic, "db", "upgrade")
        assert installed() == before and len(before[0]) == 12 and len(before[1]) == 3  # workflow tables: 6
        changed = cli(booknetic, "db", "upgrade", APPTFLOW_DATABASE_TENANT="3")  # the views change, not the rest
        assert "problem" not in changed and installed() == before
    finally:
        engine.dispose()


def test_a_command_without_the_installed_mapping_says_so_instead_of_reading_other_tables(booknetic):
    for command in (["workflow", "list"], ["jobs"], ["status"]):  # and `run`, through the same check
        output = cli(booknetic, *command, code=1, APPTFLOW_DATABASE_MAPPING="")
        assert "the database is installed with mapping booknetic: set [database] mapping to it" in output


def test_one_tenant_of_booknetic_saas_is_read_when_configured(booknetic):
    cli(booknetic, "db", "upgrade", APPTFLOW_DATABASE_TENANT="3")
    engine = connect(booknetic, mapped=True)
    try:
        mine, theirs = book(booknetic, tenant=3), book(booknetic, tenant=4)
        # the mapping's view, named as an admin reads it beside the site's tables
        assert sql(engine, "SELECT id FROM apptflow_appointments ORDER BY id") == [(mine,)]
        assert sql(engine, "SELECT row_id FROM change_events WHERE table_name = 'appointments'") == [(mine,)]
        assert theirs != mine
    finally:
        engine.dispose()



# --- the site's time zone and Booknetic's dates -------------------------------------------------------------

def set_options(url: str, **options: str) -> None:
    """WordPress's update_option(): the row replaced, whatever was there."""
    for name, value in options.items():
        booknetic_write(url, "REPLACE INTO wp_options (option_name, option_value) VALUES (:name, :value)",
                        name=name, value=value)


@pytest.mark.parametrize(("gmt_offset", "zone", "local"), [
    ("3", "+03:00", "18:24"),  # "UTC+3" in WordPress's settings
    ("5.75", "+05:45", "21:09"),
    ("-3.5", "-03:30", "11:54"),
    ("0", "UTC", "15:24"),
])
def test_a_site_set_to_a_utc_offset_shows_its_times_at_that_offset(harness, booknetic, gmt_offset, zone, local):
    engine, pipeline = harness
    set_options(booknetic, timezone_string="", gmt_offset=gmt_offset)  # what WordPress saves for "UTC+3"
    add_workflow(engine, email("confirm", {"type": "appointment_created"},
                               "{appointment_start_time} {location_timezone}", "{appointment_date_time}"))
    book(booknetic, start=dt.datetime(2026, 11, 25, 15, 24, tzinfo=UTC))
    pipeline.run(NOW)
    [message] = pipeline.sent("smtp")
    assert message.subject == f"{local} {zone}"
    assert message.text == f"25 nov. 2026, {local}"
    assert sql(engine, "SELECT timezone FROM apptflow_locations") == [(zone,)]


def test_a_saas_tenants_own_time_zone_comes_before_the_sites(harness, booknetic):
    engine, pipeline = harness
    for table in ("wp_bkntc_locations", "wp_bkntc_customers"):
        booknetic_write(booknetic, f"UPDATE {table} SET tenant_id = 3")
    booknetic_write(booknetic, "INSERT INTO wp_bkntc_locations (id, name, tenant_id) VALUES (2, 'Shibuya', 4), "
                               "(3, 'Lyon', 5)")
    # Booknetic SaaS's Settings page: Helper::setOption('timezone', ...) under the tenant's own name
    set_options(booknetic, bkntc_t3_timezone="UTC+5.5", bkntc_t4_timezone="Asia/Tokyo", gmt_offset="2")
    assert sql(engine, "SELECT id, timezone FROM apptflow_locations ORDER BY id") == [
        (1, "+05:30"), (2, "Asia/Tokyo"), (3, "Europe/Paris")]  # tenant 5 has none: the site's timezone_string
    cli(booknetic, "db", "upgrade", APPTFLOW_DATABASE_TENANT="3")
    add_workflow(engine, email("confirm", {"type": "appointment_created"}, "{appointment_date_time}"))
    book(booknetic, tenant=3)
    pipeline.run(NOW)
    assert [m.subject for m in pipeline.sent("smtp")] == ["25 nov. 2026, 19:30"]  # 14:00 UTC at +05:30


def test_a_customers_creation_is_read_from_booknetics_date_text(harness, booknetic):
    engine, pipeline = harness
    # the booking panel writes date('Y-m-d'), the admin panel date('Y-m-d H:i:s'): PHP's date() in UTC,
    # the zone WordPress gives PHP
    booknetic_write(booknetic, "INSERT INTO wp_bkntc_customers (id, first_name, email, created_at) VALUES "
                               "(8, 'Grace', 'grace@example.test', '2026-11-23'), "
                               "(9, 'Alan', 'alan@example.test', '2026-11-23 23:30:00'), "
                               "(10, 'Imported', NULL, NULL)")
    assert sql(engine, "SELECT id, created_at FROM apptflow_customers WHERE id > 7 ORDER BY id") == [
        (8, dt.datetime(2026, 11, 23, 12, 0)), (9, dt.datetime(2026, 11, 23, 23, 30)), (10, None)]
    add_workflow(engine, email("created", {"type": "appointment_created"},
                               "{{ customer.created_at | format_date('d MMM y') }}",
                               "{{ customer.created_at | format_datetime('d MMM y HH:mm') }}"))
    for customer in (8, 9):
        book(booknetic, customer=customer)
    pipeline.run(NOW)
    # in Paris: a date alone stays that date; 23:30 UTC is already the next day there
    assert sorted((m.to[0], m.subject, m.text) for m in pipeline.sent("smtp")) == [
        ("alan@example.test", "24 nov. 2026", "24 nov. 2026 00:30"),
        ("grace@example.test", "23 nov. 2026", "23 nov. 2026 13:00")]


def test_booknetics_unknown_language_and_zone_read_as_none(harness, booknetic):
    engine, pipeline = harness
    add_workflow(engine, email("confirm", {"type": "appointment_created"},
                               "{appointment_date_time} / {appointment_start_time_client}", "[{customer_locale}]"))
    booking = book(booknetic, locale="-", client_timezone="-")  # Booknetic's "-": the browser did not say
    assert sql(engine, "SELECT locale FROM apptflow_appointments WHERE id = :id", id=booking) == [(None,)]
    assert sql(engine, "SELECT locale, timezone FROM apptflow_customers WHERE id = 7") == [(None, None)]
    pipeline.run(NOW)
    [message] = pipeline.sent("smtp")
    # English, as for a language apptflow does not know, and the location's zone for the customer's
    assert message.subject == "Nov 25, 2026, 3:00 PM / 3:00 PM"
    assert message.text == "[]"

def dump(server, database: str) -> str:
    """The whole database as mariadb-dump writes it: tables, triggers, routines, views and rows."""
    result = subprocess.run(["mariadb-dump", f"--socket={server.root / 'sock'}", "-uroot", "--routines",
                             "--triggers", "--skip-dump-date", "--skip-comments", database],
                            capture_output=True, text=True, check=True)
    return result.stdout


def test_install_then_uninstall_leaves_the_sites_database_as_it_was(backend, request):
    if backend != "mariadb":
        pytest.skip("Booknetic runs on MySQL/MariaDB")
    server = request.getfixturevalue("mariadb_server")
    url = site(server)
    database = url.rsplit("/", 1)[1]
    book(url)
    before = dump(server, database)
    try:
        cli(url, "db", "init")
        installed = dump(server, database)
        cli(url, "db", "uninstall", "--yes")
        after = dump(server, database)
    finally:
        server.drop_database(database)
    for added in ("`apptflow_deliveries`", "`apptflow_capture_wp_bkntc_appointments_insert`",
                  "`apptflow_sync_appointments`", "VIEW `apptflow_appointments`", "`apptflow_status_code`"):
        assert added in installed
    assert after == before


def test_a_running_daemon_on_the_site_confirms_a_booking_and_reminds_at_the_second_and_not_after_a_cancel(
        booknetic):
    """A real daemon, polling as it does on MySQL/MariaDB (no notifications there), with the default poll."""
    engine = connect(booknetic, mapped=True)
    config = make_config(booknetic, APPTFLOW_DATABASE_MAPPING="booknetic", APPTFLOW_DAEMON_HEARTBEAT="200ms")
    assert config.get("daemon", "poll_interval") == dt.timedelta(milliseconds=200)
    add_workflow(engine, email("confirm", {"type": "appointment_created"}, "{service_name} booked"))
    reminder = add_workflow(engine, email("reminder", {"type": "appointment_starts", "offset": "-1h"},
                                          "{{ fire_time }}", filters={"statuses": ["approved"]}))
    daemon = Daemon(config, engine=engine)
    daemon.start()
    try:
        starts = dt.datetime.now(UTC).replace(microsecond=0) + dt.timedelta(hours=1, seconds=3)
        kept, cancelled = book(booknetic, start=starts), book(booknetic, start=starts)
        booknetic_write(booknetic, "UPDATE wp_bkntc_appointments SET status = 'canceled' WHERE id = :id",
                        id=cancelled)
        wait_until(lambda: sql(engine, "SELECT count(*) FROM deliveries WHERE workflow_id = :w AND status = 'sent'",
                               w=reminder) == [(1,)], timeout=20)
    finally:
        daemon.stop()
        engine.dispose()
    engine = connect(booknetic, mapped=True)
    try:
        [(subject, occurrence, sent_at)] = sql(engine, "SELECT subject_id, occurrence, sent_at FROM deliveries "
                                                       "WHERE workflow_id = :w", w=reminder)
        confirmed = sql(engine, "SELECT subject_id FROM deliveries WHERE workflow_id <> :w ORDER BY subject_id",
                        w=reminder)
    finally:
        engine.dispose()
    planned = starts - dt.timedelta(hours=1)
    assert (subject, occurrence) == (kept, f"at:{planned.isoformat()}")  # the cancelled one is not reminded
    assert utc(sent_at) >= planned  # never early
    assert confirmed == [(kept,), (cancelled,)]


# --- apptflow import booknetic ------------------------------------------------------------------------------

def booknetic_workflow(url: str, name: str, when: str, data: dict, actions: list[tuple[str, dict]],
                       active: bool = True) -> int:
    """A workflow as Booknetic's Workflows page saves it: the row, then its actions, data as JSON text."""
    app = connect(url, prefix="unused_")
    with app.begin() as conn:
        workflow = conn.execute(text("INSERT INTO wp_bkntc_workflows (name, `when`, data, is_active) "
                                     "VALUES (:name, :when, :data, :active)"),
                                {"name": name, "when": when, "data": json.dumps(data), "active": active}).lastrowid
        for driver, action in actions:
            conn.execute(text("INSERT INTO wp_bkntc_workflow_actions (workflow_id, driver, data, is_active) "
                              "VALUES (:w, :driver, :data, 1)"),
                         {"w": workflow, "driver": driver, "data": json.dumps(action)})
    app.dispose()
    return workflow


def some_booknetic_workflows(url: str) -> None:
    booknetic_workflow(url, "New booking", "booking_new", {"locations": [], "services": ["10"], "staffs": [],
                                                           "statuses": ["approved"], "locale": "", "called_from": ""},
                       [("email", {"to": "{customer_email}, desk@salon.test",
                                   "subject": "Booked: {service_name} on {appointment_date_time}",
                                   "body": "<p>Hello {customer_full_name}, see you at {location_name}.</p>",
                                   "attachments": ""}),
                        ("twilio-sms", {"to": "{customer_phone}", "body": "{service_name}: {appointment_start_time}"})])
    booknetic_workflow(url, "Reminder", "booking_starts", {"offset_sign": "before", "offset_value": "2",
                                                            "offset_type": "hour", "statuses": ["approved"],
                                                            "locations": [], "services": [], "staffs": [],
                                                            "locale": ""},
                       [("telegram", {"to": "424242", "body": "{customer_first_name} at {appointment_start_time}",
                                      "documents": []}),
                        ("webhook", {"request_method": "POST", "url": "https://hooks.salon.test/booknetic",
                                     "content_type": "JSON", "headers": {"X-Site": "salon"},
                                     "body": '{"id": "{appointment_id}", "status": "{appointment_status}"}'})])
    booknetic_workflow(url, "Paid", "appointment_paid", {"locale": ""},
                       [("email", {"to": "{customer_email}", "subject": "Thanks", "body": "Paid"})])
    booknetic_workflow(url, "Zoom", "booking_new", {}, [("zoom", {"meeting": "1"})])
    booknetic_workflow(url, "Admin bookings", "booking_new", {"called_from": "backend"},
                       [("email", {"to": "{staff_email}", "subject": "Booked by the desk", "body": "b"})])


def test_import_booknetic_dry_run_shows_the_translation_and_writes_nothing(booknetic):
    some_booknetic_workflows(booknetic)
    result = CliRunner().invoke(main, ["import", "booknetic", "--dry-run"],
                                env={"APPTFLOW_DATABASE_URL": booknetic, "APPTFLOW_DATABASE_MAPPING": "booknetic"})
    assert result.exit_code == 1, result.output
    assert "trigger:\n  type: appointment_starts\n  offset: -2h" in result.output
    assert "to: [customer, desk@salon.test]" in result.output
    assert "- type: sms\n  provider: twilio\n  to: [customer]\n  body: '{{ service_name }}: " \
           "{{ appointment_start_time }}'" in result.output
    assert "event 'appointment_paid': apptflow does not see Booknetic's payments happen" in result.output
    assert "no apptflow action does what Booknetic's 'zoom' driver does" in result.output
    assert "Booknetic workflow 5 (Admin bookings): not imported: filters.started_by: " in result.output
    assert "would add 2 of 5 Booknetic workflows; 3 not translated" in result.output
    engine = connect(booknetic, mapped=True)
    try:
        assert sql(engine, "SELECT count(*) FROM workflows") == [(0,)]
    finally:
        engine.dispose()


def test_imported_booknetic_workflows_render_the_texts_booknetic_would(harness, booknetic):
    engine, pipeline = harness
    some_booknetic_workflows(booknetic)
    output = cli(booknetic, "import", "booknetic", code=1)
    assert "added 2 of 5 Booknetic workflows" in output and "switch its workflows off" in output
    assert [name for (name,) in sql(engine, "SELECT name FROM workflows ORDER BY id")] == ["New booking", "Reminder"]
    booking = book(booknetic)
    pipeline.run(NOW)
    [message] = pipeline.sent("smtp")
    assert message.subject == "Booked: Haircut on 25 nov. 2026, 15:00"
    assert message.to == ("ada@example.test", "desk@salon.test")
    assert message.html == "<p>Hello Ada Lovelace, see you at Opéra.</p>"
    reminder = sql(engine, "SELECT id FROM workflows WHERE name = 'Reminder'")[0][0]
    assert pipeline.jobs() == {f"wf:{reminder}:appt:{booking}": START - dt.timedelta(hours=2)}
    again = CliRunner().invoke(main, ["import", "booknetic"],
                               env={"APPTFLOW_DATABASE_URL": booknetic, "APPTFLOW_DATABASE_MAPPING": "booknetic"})
    assert "a workflow named 'New booking' already exists" in again.output  # importing twice adds nothing twice


def test_import_booknetic_merge_locales_makes_one_workflow_per_language_one_with_variants(booknetic):
    for name, locale, subject in (("Booked (IT)", "it_IT", "Prenotato: {service_name}"),
                                  ("Booked", "", "Booked: {service_name}"),
                                  ("Booked (FR)", "fr_FR", "Réservé : {service_name}")):
        booknetic_workflow(booknetic, name, "booking_new", {"locale": locale, "statuses": ["approved"]},
                           [("email", {"to": "{customer_email}", "subject": subject, "body": "b"})])
    output = cli(booknetic, "import", "booknetic", "--merge-locales")
    assert "Booknetic workflows 1 (Booked (IT)), 2 (Booked), 3 (Booked (FR)): added as workflow 1: Booked" in output
    assert "added 1 of 3 Booknetic workflows" in output
    exported = load_yaml(cli(booknetic, "workflow", "export", "1"))
    assert exported["filters"] == {"statuses": ["approved"]}  # "Booked" went to every customer
    assert exported["actions"][0]["subject"] == {"it_IT": "Prenotato: {{ service_name }}",
                                                 "fr_FR": "Réservé : {{ service_name }}",
                                                 "default": "Booked: {{ service_name }}"}
