"""The words apptflow stores (delivery statuses, operations, tables) and the query behind `apptflow jobs`."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event

from db import deliveries
from db import jobs as job_queries
from db.codes import RETRYABLE_STATUSES, STORED_STATUSES, CapturedTable, DeliveryStatus, Operation
from tests.booking import book, seed
from tests.conftest import sql
from tests.pipeline import add_workflow, email

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_the_status_words_are_those_the_history_shows():
    assert [str(s) for s in DeliveryStatus] == ["pending", "sending", "sent", "dead", "unknown", "skipped",
                                                "missed", "lost"]
    assert DeliveryStatus.SENT == "sent" and f"{DeliveryStatus.DEAD}" == "dead"
    assert DeliveryStatus.LOST not in STORED_STATUSES  # an attempt's outcome, never a row's status
    assert set(RETRYABLE_STATUSES) == {"dead", "unknown", "skipped", "missed"}


def test_operations_are_what_the_capture_triggers_write_and_tables_say_their_singular():
    assert [str(o) for o in Operation] == ["INSERT", "UPDATE", "DELETE"]
    assert CapturedTable("appointments").singular == "appointment"
    assert CapturedTable("customers").singular == "customer"
    assert CapturedTable("workflow_actions").singular == "workflow action"


def _delivery(workflow: int, key: str) -> dict:
    return {"idempotency_key": key, "workflow_id": workflow, "action_position": 0, "action_type": "email",
            "subject_table": CapturedTable.APPOINTMENTS, "subject_id": 1, "occurrence": "event:1",
            "status": DeliveryStatus.PENDING, "next_attempt_at": NOW, "created_at": NOW, "updated_at": NOW}


def test_a_delivery_status_is_stored_as_its_word_and_read_back_as_it(engine):
    with engine.begin() as conn:
        assert deliveries.insert_deliveries(conn, [_delivery(1, "a"), _delivery(1, "b")]) == 2
        first, second = deliveries.claim_due_batch(conn, NOW, dt.timedelta(minutes=2), 2)
        assert deliveries.mark_final(conn, first, NOW, status=DeliveryStatus.DEAD, error="bad address")
        assert deliveries.mark_sent(conn, second, NOW, provider_id="x", rendered={}, recipients="a@b.test")
    assert sorted(sql(engine, "SELECT status FROM deliveries")) == [("dead",), ("sent",)]
    with engine.connect() as conn:
        assert deliveries.counts_by_status(conn) == {"dead": 1, "sent": 1}
        [dead] = deliveries.history(conn, status=DeliveryStatus.DEAD)
        [by_word] = deliveries.history(conn, appointment_id=1, status="dead")
    assert dead.id == by_word.id == first.id and DeliveryStatus(dead.status) is DeliveryStatus.DEAD


def _job(job_id: str, at: dt.datetime | None) -> dict:
    return {"id": job_id, "next_run_time": at.timestamp() if at else None, "job_state": b"not read"}


def _write_jobs(engine, rows: list[dict]) -> None:
    with engine.begin() as conn:
        job_queries.replace_jobs(conn, rows)


@pytest.fixture
def planned(engine):
    """A workflow, an appointment, and jobs: theirs, one of a gone appointment, one of a gone workflow,
    one not yet timed and one that is not a firing."""
    workflow = add_workflow(engine, email("Reminder", {"type": "appointment_starts", "offset": "-30m"}, "s"))
    appointment = book(engine, seed(engine), starts_at="2026-11-25T09:00:00+00:00",
                       ends_at="2026-11-25T09:45:00+00:00")
    _write_jobs(engine, [
        _job(job_queries.job_id(workflow, appointment), NOW + dt.timedelta(hours=2)),
        _job(job_queries.job_id(workflow, 999), NOW + dt.timedelta(hours=1)),
        _job(job_queries.job_id(998, appointment), NOW + dt.timedelta(hours=3)),
        _job(job_queries.job_id(workflow, 997), None),
        _job("housekeeping", NOW),
    ])
    return workflow, appointment


def test_upcoming_firings_are_read_soonest_first_with_what_jobs_shows(engine, planned):
    workflow, appointment = planned
    with engine.connect() as conn:
        found = job_queries.upcoming_firings(conn)
        assert job_queries.count_firings(conn) == 4
    assert [(f.run_at, f.workflow_id, f.workflow_name, f.appointment_id, f.timezone, f.customer) for f in found] == [
        (NOW + dt.timedelta(hours=1), workflow, "Reminder", 999, None, None),
        (NOW + dt.timedelta(hours=2), workflow, "Reminder", appointment, "Europe/Paris", "Ada Lovelace"),
        (NOW + dt.timedelta(hours=3), 998, None, appointment, "Europe/Paris", "Ada Lovelace"),
    ]


def test_upcoming_firings_of_one_workflow_or_appointment(engine, planned):
    workflow, appointment = planned
    with engine.connect() as conn:
        def ids(**only):
            return [(f.workflow_id, f.appointment_id) for f in job_queries.upcoming_firings(conn, **only)]

        assert ids(workflow_id=workflow) == [(workflow, 999), (workflow, appointment)]
        assert ids(appointment_id=appointment) == [(workflow, appointment), (998, appointment)]
        assert ids(workflow_id=workflow, appointment_id=appointment) == [(workflow, appointment)]
        assert ids(workflow_id=12345) == []


def test_upcoming_firings_cost_the_same_statements_for_one_job_or_many(engine):
    workflow = add_workflow(engine, email("Reminder", {"type": "appointment_starts", "offset": "-30m"}, "s"))
    ids = seed(engine)
    booked = [book(engine, ids, starts_at="2026-11-25T09:00:00+00:00", ends_at="2026-11-25T09:45:00+00:00")
              for _ in range(12)]
    statements = []

    def count(conn, cursor, statement, *_):
        statements.append(statement.split()[0])

    def cost() -> int:
        statements.clear()
        with engine.connect() as conn:
            event.listen(conn, "before_cursor_execute", count)
            job_queries.upcoming_firings(conn)
        return statements.count("SELECT")

    _write_jobs(engine, [_job(job_queries.job_id(workflow, booked[0]), NOW)])
    one = cost()
    _write_jobs(engine, [_job(job_queries.job_id(workflow, a), NOW) for a in booked[1:]])
    assert cost() == one == 3  # the jobs, their appointments, their workflows
