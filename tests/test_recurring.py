"""Recurring triggers (schedule, customer_birthday, customer_inactive) on every database, driven by plain SQL.

Time is passed in: the planner's clock reads the harness's ``now``. The real
daemon's test shifts the whole daemon's clock, APScheduler's included, to two
seconds before a minute, so that it sees real firings at second :00 without
waiting for one.
"""

from __future__ import annotations

import datetime as dt
import json
import pickle

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import inspect

import apscheduler.executors.base
import apscheduler.schedulers.base
from db import schema
from db.records import KnownIds
from engine.errors import InvalidWorkflow
from engine.validation import parse_workflow
from scheduler.cli import main
from scheduler.daemon import Daemon
from tests.booking import book, insert, seed
from tests.conftest import sql, utc, wait_until
from tests.pipeline import add_workflow, make_config
from tests.test_time_offset import NOW, Harness

UTC = dt.timezone.utc
FAST = {"APPTFLOW_DAEMON_POLL_INTERVAL": "100ms", "APPTFLOW_DAEMON_HEARTBEAT": "200ms"}


@pytest.fixture
def harness(engine, db_url):
    harness = Harness(engine, make_config(db_url))
    yield harness
    harness.close()


def recurring_jobs(engine) -> dict[str, dt.datetime]:
    rows = sql(engine, "SELECT id, next_run_time FROM apscheduler_jobs")
    return {i: dt.datetime.fromtimestamp(t, UTC) for i, t in rows if not i.startswith("wf:")}


def deliveries(engine) -> list[tuple]:
    return sql(engine, "SELECT subject_table, subject_id, occurrence, status FROM deliveries ORDER BY id")


def fire_job(harness, job_id: str) -> None:
    """Run a job the way APScheduler does: its function with its stored arguments, the job removed (a second
    run, as a second instance or a restart would make it, finds the arguments kept)."""
    kept = harness.__dict__.setdefault("kept_jobs", {})
    state = kept.get(job_id) or sql(harness.engine, "SELECT job_state FROM apscheduler_jobs WHERE id = :id",
                                    id=job_id)[0][0]
    kept[job_id] = state
    sql(harness.engine, "DELETE FROM apscheduler_jobs WHERE id = :id", id=job_id)
    harness.planner.recurring.fire(*pickle.loads(state)["args"])



def email(name, trigger, to="customer", subject="s", body="b", **extra):
    return {"name": name, "trigger": trigger, **extra,
            "actions": [{"type": "email", "to": [to], "subject": subject, "body": body}]}


# --- a schedule through the running daemon ------------------------------------------------------------------

class _Shifted:
    """A clock *offset* ahead of the real one, for the daemon and APScheduler alike."""

    def __init__(self):
        self.offset = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC) + self.offset

    def to(self, moment: dt.datetime) -> None:
        self.offset = moment - dt.datetime.now(UTC)


@pytest.fixture
def shifted(monkeypatch):
    clock = _Shifted()

    class ShiftedDatetime(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime.now(tz) + clock.offset

    monkeypatch.setattr(apscheduler.schedulers.base, "datetime", ShiftedDatetime)
    monkeypatch.setattr(apscheduler.executors.base, "datetime", ShiftedDatetime)
    return clock


def run_daemon_until(db_url, engine, clock, predicate):
    daemon = Daemon(make_config(db_url, **FAST), engine=engine, clock=clock.now)
    daemon.start()
    try:
        wait_until(predicate, timeout=20)
    finally:
        daemon.stop()


def test_a_schedule_sends_each_staff_member_their_agenda_at_each_minute_once_across_a_restart(
        engine, db_url, shifted):
    minute = (dt.datetime.now(UTC) + dt.timedelta(minutes=5)).replace(second=0, microsecond=0)
    ids = seed(engine)
    bo = insert(engine, "staff", name="Bo", email="bo@salon.test")
    insert(engine, "staff", name="Cy", email="cy@salon.test")  # nothing booked: no message
    add_workflow(engine, email("agenda", {"type": "schedule", "cron": "* * * * *", "for_each": "staff",
                                          "window": "3h"}, to="staff", subject="{{ staff_name }}: {{ fire_time }}",
                               body="{% for a in appointments %}{{ a.appointment_id }} {{ a.customer_first_name }};"
                                    "{% endfor %}", filters={"statuses": ["approved"]}))

    def booked(staff, hours, status="approved"):
        starts = minute + dt.timedelta(hours=hours)
        return insert(engine, "appointments", customer_id=ids["customer"], service_id=ids["service"], staff_id=staff,
                      location_id=ids["location"], status=status, starts_at=starts.isoformat(),
                      ends_at=(starts + dt.timedelta(minutes=45)).isoformat())

    sam_listed = [booked(ids["staff"], 1), booked(ids["staff"], 2)]
    booked(ids["staff"], 5)  # beyond the window
    booked(ids["staff"], 1, status="canceled")  # filtered out
    bo_listed = [booked(bo, 2)]

    def sent(count):
        return lambda: sql(engine, "SELECT count(*) FROM deliveries WHERE status = 'sent'")[0][0] == count

    shifted.to(minute - dt.timedelta(seconds=2))
    run_daemon_until(db_url, engine, shifted, sent(2))
    shifted.to(minute + dt.timedelta(seconds=20))  # restarted during that minute
    run_daemon_until(db_url, engine, shifted, lambda: recurring_jobs(engine) and all(
        t == minute + dt.timedelta(minutes=1) for t in recurring_jobs(engine).values()))
    shifted.to(minute + dt.timedelta(seconds=58))
    run_daemon_until(db_url, engine, shifted, sent(4))

    rows = sql(engine, "SELECT subject_table, subject_id, occurrence, sent_at, rendered FROM deliveries "
                       "ORDER BY occurrence, subject_id")
    later = minute + dt.timedelta(minutes=1)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("staff", ids["staff"], f"at:{minute.isoformat()}"), ("staff", bo, f"at:{minute.isoformat()}"),
        ("staff", ids["staff"], f"at:{later.isoformat()}"), ("staff", bo, f"at:{later.isoformat()}")]
    for subject_table, subject, occurrence, sent_at, rendered in rows:
        assert utc(sent_at) >= dt.datetime.fromisoformat(occurrence[3:])  # never early
        message = json.loads(rendered) if isinstance(rendered, str) else rendered
        listed = sam_listed if subject == ids["staff"] else bo_listed
        assert message["text"] == "".join(f"{a} Ada;" for a in listed)
        assert message["subject"].startswith("Sam Staff: " if subject == ids["staff"] else "Bo: ")


def test_a_schedule_plans_one_job_per_target_and_follows_its_filters(engine, harness):
    ids = seed(engine)
    other = insert(engine, "locations", name="Uptown", timezone="America/New_York")
    workflow = add_workflow(engine, email("evening", {"type": "schedule", "cron": "0 18 * * *",
                                                      "for_each": "location"}, to="admin@salon.test",
                                          filters={"locations": [ids["location"], other]}))
    harness.consumer.drain(NOW)
    # 18:00 where each location is: Paris (UTC+1) and New York (UTC-5)
    assert recurring_jobs(engine) == {
        f"sched:{workflow}:location:{ids['location']}": dt.datetime(2026, 11, 23, 17, 0, tzinfo=UTC),
        f"sched:{workflow}:location:{other}": dt.datetime(2026, 11, 23, 23, 0, tzinfo=UTC)}
    sql(engine, "UPDATE workflows SET enabled = false WHERE id = :id", id=workflow)
    harness.consumer.drain(NOW)
    assert recurring_jobs(engine) == {}


# --- customer_birthday ------------------------------------------------------------------------------------

def test_a_birthday_fires_once_in_the_customers_zone_and_an_edited_birthday_moves_its_job(engine, harness, db_url):
    seed(engine)
    tokyo = insert(engine, "customers", first_name="Kei", email="kei@example.test", timezone="Asia/Tokyo",
                   birthday="1990-11-23")  # 18:00 in Tokyo is 09:00 UTC
    insert(engine, "customers", first_name="Uma", email="uma@example.test", birthday="1990-11-23")  # UTC: 18:01
    insert(engine, "customers", first_name="Ned", email="ned@example.test", timezone="Asia/Tokyo",
           birthday="1991-11-24")
    workflow = add_workflow(engine, email("birthday", {"type": "customer_birthday", "time": "18:01"},
                                          subject="Happy birthday {{ customer_first_name }}, {{ fire_time }}"))
    harness.consumer.drain(NOW)
    job = f"bday:{workflow}:cust:{tokyo}"
    assert recurring_jobs(engine) == {job: NOW + dt.timedelta(minutes=1)}
    result = CliRunner().invoke(main, ["jobs"], env={"APPTFLOW_DATABASE_URL": db_url})
    assert f"2026-11-23 09:01:00  {workflow} birthday" in result.output and f"customer {tokyo}" in result.output

    harness.now = NOW + dt.timedelta(minutes=1)
    fire_job(harness, job)
    fire_job(harness, job)  # a second instance, a restart: the same occurrence
    assert deliveries(engine) == [("customers", tokyo, "birthday:2026-11-23", "pending")]
    harness.run(harness.now)
    [message] = harness.sent("smtp")
    assert message.subject == "Happy birthday Kei, Nov 23, 2026, 6:01 PM"
    sql(engine, "DELETE FROM apscheduler_jobs")
    harness.planner.reconcile(harness.now)
    assert recurring_jobs(engine) == {}  # fired already: never planned again

    harness.planner.recurring.horizon = dt.timedelta(days=2)
    sql(engine, "UPDATE customers SET birthday = '1990-11-24' WHERE id = :id", id=tokyo)
    harness.consumer.drain(harness.now)
    assert recurring_jobs(engine)[job] == NOW + dt.timedelta(days=1, minutes=1)
    sql(engine, "DELETE FROM customers WHERE id = :id", id=tokyo)
    harness.consumer.drain(harness.now)
    assert job not in recurring_jobs(engine)


# --- customer_inactive -------------------------------------------------------------------------------------

def test_a_recall_fires_once_per_lapse_and_a_new_booking_cancels_it(engine, harness):
    ids = seed(engine)
    ada = ids["customer"]
    bo = insert(engine, "customers", first_name="Bo", email="bo@example.test")
    ended = NOW - dt.timedelta(days=3) + dt.timedelta(minutes=5)
    for customer in (ada, bo):
        insert(engine, "appointments", customer_id=customer, service_id=ids["service"], staff_id=ids["staff"],
               location_id=ids["location"], status="completed", starts_at=(ended - dt.timedelta(hours=1)).isoformat(),
               ends_at=ended.isoformat())
    book(engine, {**ids, "customer": bo}, starts_at=(NOW + dt.timedelta(days=9)).isoformat(),
         ends_at=(NOW + dt.timedelta(days=9, hours=1)).isoformat(), status="approved")
    workflow = add_workflow(engine, email("recall", {"type": "customer_inactive", "after": "3d"},
                                          subject="We miss you since {{ last_visit_date }}"))
    harness.consumer.drain(NOW)
    job = f"recall:{workflow}:cust:{ada}"
    assert recurring_jobs(engine) == {job: NOW + dt.timedelta(minutes=5)}  # not Bo: he has booked

    rebooked = book(engine, ids, starts_at=(NOW + dt.timedelta(days=2)).isoformat(),
                    ends_at=(NOW + dt.timedelta(days=2, hours=1)).isoformat(), status="approved")
    harness.consumer.drain(NOW)
    assert recurring_jobs(engine) == {}  # a new booking cancels the planned firing
    sql(engine, "UPDATE appointments SET status = 'canceled' WHERE id = :id", id=rebooked)
    harness.consumer.drain(NOW)
    assert recurring_jobs(engine) == {job: NOW + dt.timedelta(minutes=5)}

    harness.now = NOW + dt.timedelta(minutes=5)
    fire_job(harness, job)
    fire_job(harness, job)
    assert deliveries(engine) == [("customers", ada, f"lapse:{ended.isoformat()}", "pending")]
    harness.run(harness.now)
    assert [m.subject for m in harness.sent("smtp")] == ["We miss you since Nov 20, 2026"]
    assert harness.planner.reconcile(harness.now) == (0, 0)  # once per lapse

    harness.planner.recurring.horizon = dt.timedelta(days=10)  # the next visit re-arms it
    visit = NOW + dt.timedelta(hours=1)
    insert(engine, "appointments", customer_id=ada, service_id=ids["service"], staff_id=ids["staff"],
           location_id=ids["location"], status="completed", starts_at=NOW.isoformat(), ends_at=visit.isoformat())
    harness.consumer.drain(harness.now)
    assert recurring_jobs(engine) == {job: visit + dt.timedelta(days=3)}


# --- the schema -----------------------------------------------------------------------------------------------

INDEXES = ("appointments_by_end", "appointments_by_start", "appointments_by_customer", "appointments_by_staff")


def test_a_database_of_revision_0003_gets_the_recurring_indexes(engine, backend):
    bookings = "public" if backend == "postgresql" else None
    with engine.begin() as conn:
        # MariaDB keeps the indexes its foreign keys use (a database of 0003 has its own on those columns)
        for name in INDEXES[:2] if backend == "mariadb" else INDEXES:
            conn.exec_driver_sql(f"DROP INDEX {name} ON appointments" if backend == "mariadb"
                                 else f"DROP INDEX {'public.' if bookings else ''}{name}")
        command.stamp(schema._alembic_config(conn), "0003")
    assert schema.upgrade(engine) == ("0003", schema.head_revision())
    present = {index["name"] for index in inspect(engine).get_indexes("appointments", schema=bookings)}
    assert set(INDEXES) <= present


# --- validation -----------------------------------------------------------------------------------------------

def problems(document, **known) -> list[str]:
    try:
        parse_workflow(document, known=KnownIds(locations=frozenset(), services=frozenset(), staff=frozenset(),
                                                **known) if known else None)
    except InvalidWorkflow as error:
        return [str(p) for p in error.problems]
    return []


def test_a_birthday_is_refused_where_the_mapping_has_no_birthday():
    document = email("b", {"type": "customer_birthday", "time": "09:00"})
    assert problems(document) == []
    assert problems(document, absent={"customers.birthday": "Cal.com attendees have no birthday"}) == [
        "trigger.type: customer_birthday has no data here: customers.birthday: Cal.com attendees have no birthday"]


def test_a_schedule_has_no_customer_and_checks_its_parameters():
    assert problems(email("s", {"type": "schedule", "cron": "0 18 * *", "for_each": "company", "window": "2x",
                                "timezone": "Mars/Olympus"}, subject="{{ customer_first_name }}")) == [
        "trigger.timezone: unknown time zone 'Mars/Olympus': an IANA name such as Europe/Paris, or an offset such as "
        "+05:45",
        "trigger.cron: '0 18 * *' is not a cron expression of five fields (minute hour day month weekday), "
        "e.g. \"0 18 * * *\"",
        "trigger.window: '2x' is not a duration: use an integer with s, m, h, d or w (e.g. -30m, 2h, 1d); a bare "
        "integer means minutes",
        "actions[0].to[0]: schedule has no customer (for_each: company)",
        "actions[0].subject: keyword 'customer_first_name' is not available for schedule"]
