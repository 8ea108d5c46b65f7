"""The consumer hands the deliveries it has just written, claimed in its own transaction, to a worker of its
process with the workflows and bookings it has read (docs/pipeline.md, "Handed to a worker")."""

from __future__ import annotations

import datetime as dt

import pytest

from db import instances
from scheduler.workers import Handoff
from tests.booking import insert, seed
from tests.conftest import sql
from tests.pipeline import NOW, Pipeline, add_workflow, make_config

LEASE = dt.timedelta(minutes=2)


@pytest.fixture
def pipeline(engine, db_url):
    pipeline = Pipeline(engine, make_config(db_url))
    yield pipeline
    pipeline.close()


def _hand_off(pipeline, *, batch: int, workers: int) -> Handoff:
    handoff = Handoff(LEASE, batch, workers)
    pipeline.consumer.handoff = pipeline.worker.handoff = handoff
    return handoff


def _book(engine, ids, how_many: int, **extra) -> list[int]:
    with engine.begin() as conn:  # one transaction, as an application books several at once
        return [insert(conn, "appointments", customer_id=ids["customer"], service_id=ids["service"],
                       staff_id=ids["staff"], location_id=ids["location"], status="approved",
                       starts_at="2026-12-01T10:00:00+00:00", ends_at="2026-12-01T10:45:00+00:00", **extra)
                for _ in range(how_many)]


def _rows(engine) -> list[tuple]:
    return sql(engine, "SELECT subject_id, status, attempts FROM deliveries ORDER BY subject_id")


def _confirmation(engine, **action) -> None:
    add_workflow(engine, {"name": "Confirmation", "trigger": {"type": "appointment_created"},
                          "actions": [{"type": "email", "to": ["customer"], "subject": "{{ service_name }} booked",
                                       "body": "Hello {{ customer_first_name }}", **action}]})


def test_the_consumer_claims_what_the_handoff_has_room_for_and_the_table_is_still_looked_at(engine, pipeline):
    _confirmation(engine)
    booked = _book(engine, seed(engine), 3)
    handoff = _hand_off(pipeline, batch=1, workers=2)  # room for two
    pipeline.worker.table_look = 3600  # the first batch looks at the table first, the next ones not
    pipeline.consumer.drain(NOW)
    # two claimed in the consumer's transaction (one attempt counted each), the third left for any worker
    assert _rows(engine) == [(booked[0], "sending", 1), (booked[1], "sending", 1), (booked[2], "pending", 0)]
    assert handoff.room() == 0
    sql(engine, "UPDATE services SET name = 'Coupe'")  # after the consumer read the bookings
    # the table first: what waits there is not left behind while fresh deliveries keep being handed over
    [outcome] = pipeline.worker.work(NOW)
    assert outcome.status == "sent"
    assert _rows(engine) == [(booked[0], "sending", 1), (booked[1], "sending", 1), (booked[2], "sent", 1)]
    # then the handed batches, without a claim, rendered from the bookings as the consumer read them
    [outcome] = pipeline.worker.work(NOW)
    assert outcome.status == "sent"
    assert _rows(engine) == [(booked[0], "sent", 1), (booked[1], "sending", 1), (booked[2], "sent", 1)]
    [outcome] = pipeline.worker.work(NOW)
    assert outcome.status == "sent"
    assert pipeline.worker.work(NOW) == []
    assert handoff.room() == 2
    assert _rows(engine) == [(a, "sent", 1) for a in booked]
    sent = pipeline.sent("smtp")
    assert [m.subject for m in sent] == ["Coupe booked", "Haircut booked", "Haircut booked"]
    assert {m.text for m in sent} == {"Hello Ada"}


def test_a_delivery_not_due_yet_is_not_claimed(engine, pipeline):
    # outside its send window now (09:00 UTC is 10:00 in Paris): it waits, pending, for the window
    _confirmation(engine, send_window="14:00-18:00")
    [booked] = _book(engine, seed(engine), 1)
    handoff = _hand_off(pipeline, batch=10, workers=1)
    pipeline.consumer.drain(NOW)
    assert _rows(engine) == [(booked, "pending", 0)]
    assert handoff.take() is None


def test_handed_deliveries_no_worker_took_are_given_back_and_sent_once_later(engine, pipeline):
    _confirmation(engine)
    booked = _book(engine, seed(engine), 2)
    handoff = _hand_off(pipeline, batch=10, workers=1)
    pipeline.consumer.drain(NOW)
    assert [status for _, status, _ in _rows(engine)] == ["sending", "sending"]
    pipeline.worker.give_back(handoff.take_all(), NOW)  # as the daemon does when it stops
    assert _rows(engine) == [(a, "pending", 0) for a in booked]
    pipeline.worker.handoff = None  # another instance's worker
    assert [o.status for o in pipeline.run()] == ["sent", "sent"]
    assert _rows(engine) == [(a, "sent", 1) for a in booked]
    assert len(pipeline.sent("smtp")) == 2


def test_a_handed_batch_taken_after_half_its_lease_is_given_back_unattempted(engine, pipeline):
    _confirmation(engine)
    [booked] = _book(engine, seed(engine), 1)
    _hand_off(pipeline, batch=10, workers=1)
    pipeline.consumer.drain(NOW)
    # the lease runs from the consumer's claim, not from when a worker took the batch
    pipeline.worker.clock = lambda: NOW + LEASE / 2 + dt.timedelta(seconds=1)
    assert pipeline.worker.work(NOW + LEASE / 2 + dt.timedelta(seconds=1)) == []
    assert _rows(engine) == [(booked, "pending", 0)]
    assert pipeline.sent("smtp") == []



def test_a_firing_hands_its_deliveries_over_as_the_consumer_does(engine, pipeline):
    from scheduler.planner import Planner, _Due

    workflow = add_workflow(engine, {"name": "Reminder", "trigger": {"type": "appointment_starts", "offset": "-1d"},
                          "actions": [{"type": "email", "to": ["customer"], "subject": "Tomorrow: {{ service_name }}",
                                       "body": "b"}]})
    [booked] = _book(engine, seed(engine), 1)
    handoff = _hand_off(pipeline, batch=10, workers=1)
    planner = Planner(engine, pipeline.catalogue, clock=lambda: NOW, handoff=handoff)
    planned = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.timezone.utc)
    # a stale firing (the appointment is not a day after it) writes nothing and hands nothing over
    stale = _Due(missed=False, workflow_id=workflow, appointment_id=booked, planned_at=planned - dt.timedelta(hours=1))
    assert planner.fire_batch([stale], planned) == 0
    assert planner.fire_batch([_Due(missed=False, workflow_id=workflow, appointment_id=booked, planned_at=planned)],
                              planned) == 1
    assert _rows(engine) == [(booked, "sending", 1)]
    [outcome] = pipeline.worker.work(planned)
    assert outcome.status == "sent"
    assert _rows(engine) == [(booked, "sent", 1)]
    assert [m.subject for m in pipeline.sent("smtp")] == ["Tomorrow: Haircut"]


def test_a_stopping_daemon_gives_back_what_it_handed_over_and_no_worker_took(engine, db_url):
    from scheduler.daemon import Daemon

    _confirmation(engine)
    booked = _book(engine, seed(engine), 3)
    daemon = Daemon(make_config(db_url), engine=engine)
    with engine.begin() as conn:  # registered and leading, as its start and first step make it
        instances.register(conn, daemon.instance_id, "host", 1, NOW, daemon.leadership.count)
    daemon.leadership.join(NOW)
    daemon.leadership.step(NOW, daemon._gain, daemon._lose)
    daemon.consumer.drain(NOW)  # no worker runs: the three wait in the handoff, claimed
    assert _rows(engine) == [(a, "sending", 1) for a in booked]
    daemon.stop()
    assert _rows(engine) == [(a, "pending", 0) for a in booked]
