"""Time-offset firings on APScheduler's SQL jobstore, driven by plain SQL; time passed in where it can be."""

from __future__ import annotations

import datetime as dt
import pickle
import time

import pytest
from click.testing import CliRunner

from db import jobs as job_queries
from scheduler.cli import main
from scheduler.jobstore import date_job
from scheduler.planner import Planner
from tests.booking import book, seed
from tests.conftest import sql
from tests.pipeline import Pipeline, add_workflow, make_config

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
START = NOW + dt.timedelta(days=2)


def reminder(offset="-30m", kind="appointment_starts", name="Reminder", **extra):
    document = {"name": name, "trigger": {"type": kind, "offset": offset},
                "actions": [{"type": "email", "to": ["customer"], "subject": "{{ fire_time }} ({{ offset }})",
                             "body": "{{ service_name }} at {{ appointment_start_time }}"}]}
    document.update(extra)
    return document


class Harness(Pipeline):
    """The pipeline with the planner attached; its clock reads ``self.now``."""

    def __init__(self, engine, config):
        super().__init__(engine, config)
        self.now = NOW
        self.planner = Planner(engine, self.catalogue, clock=lambda: self.now)
        self.consumer.after_commit = self.planner.after_batch

    def jobs(self) -> dict[str, dt.datetime]:
        with self.engine.connect() as conn:
            times = job_queries.run_times(conn, like="wf:%")
        return {i: dt.datetime.fromtimestamp(t, UTC) for i, t in times.items()}

    def close(self):
        if self.planner.scheduler.running:
            self.planner.stop()
        super().close()


@pytest.fixture
def harness(engine, db_url):
    harness = Harness(engine, make_config(db_url))
    yield harness
    harness.close()


def at(hours=0, minutes=0) -> str:
    return (START + dt.timedelta(hours=hours, minutes=minutes)).isoformat()


def test_a_booking_gets_its_job_and_a_reschedule_moves_it(engine, harness):
    workflow = add_workflow(engine, reminder("-30m"))
    appointment = book(engine, seed(engine), starts_at=at(), ends_at=at(minutes=45))
    harness.consumer.drain(NOW)
    assert harness.jobs() == {f"wf:{workflow}:appt:{appointment}": START - dt.timedelta(minutes=30)}
    sql(engine, "UPDATE appointments SET starts_at = :s, ends_at = :e WHERE id = :id",
        s=at(hours=3), e=at(hours=3, minutes=45), id=appointment)
    harness.consumer.drain(NOW)
    assert harness.jobs() == {f"wf:{workflow}:appt:{appointment}": START + dt.timedelta(hours=2, minutes=30)}


def test_every_offset_kind_is_planned(engine, harness):
    for name, kind, offset in (("a", "appointment_starts", "-1d"), ("b", "appointment_starts", "2h"),
                               ("c", "appointment_ends", "-10m"), ("d", "appointment_ends", "1w")):
        add_workflow(engine, reminder(offset, kind, name=name))
    appointment = book(engine, seed(engine), starts_at=at(), ends_at=at(minutes=45))
    harness.consumer.drain(NOW)
    end = START + dt.timedelta(minutes=45)
    assert sorted(harness.jobs().values()) == sorted([
        START - dt.timedelta(days=1), START + dt.timedelta(hours=2),
        end - dt.timedelta(minutes=10), end + dt.timedelta(weeks=1)])
    assert all(i.endswith(f":appt:{appointment}") for i in harness.jobs())


def test_cancellation_and_deletion_remove_the_job(engine, harness):
    add_workflow(engine, reminder(filters={"statuses": ["pending", "approved"]}))
    ids = seed(engine)
    first = book(engine, ids, starts_at=at(), ends_at=at(minutes=45))
    second = book(engine, ids, starts_at=at(), ends_at=at(minutes=45))
    harness.consumer.drain(NOW)
    assert len(harness.jobs()) == 2
    sql(engine, "UPDATE appointments SET status = 'canceled' WHERE id = :id", id=first)
    sql(engine, "DELETE FROM appointments WHERE id = :id", id=second)
    harness.consumer.drain(NOW)
    assert harness.jobs() == {}


def test_disable_edit_and_reenable_reconcile_the_jobs(engine, harness):
    workflow = add_workflow(engine, reminder("-30m"))
    ids = seed(engine)
    appointments = [book(engine, ids, starts_at=at(hours=h), ends_at=at(hours=h, minutes=45)) for h in range(3)]
    harness.consumer.drain(NOW)
    assert len(harness.jobs()) == 3
    sql(engine, "UPDATE workflows SET enabled = false WHERE id = :id", id=workflow)
    harness.consumer.drain(NOW)
    assert harness.jobs() == {}
    column = engine.dialect.identifier_preparer.quote("trigger")  # a reserved word on MySQL: `trigger`
    sql(engine, f"UPDATE workflows SET {column} = :t WHERE id = :id", t='{"offset": "-2h"}', id=workflow)
    sql(engine, "UPDATE workflows SET enabled = true WHERE id = :id", id=workflow)
    harness.consumer.drain(NOW)
    assert harness.jobs() == {f"wf:{workflow}:appt:{a}": START + dt.timedelta(hours=h - 2)
                              for h, a in enumerate(appointments)}


def test_a_booking_too_late_for_its_firing_is_recorded_skipped(engine, harness):
    add_workflow(engine, reminder("30m", "appointment_ends"))
    ids = seed(engine)
    past = NOW - dt.timedelta(hours=5)
    book(engine, ids, starts_at=past.isoformat(), ends_at=(past + dt.timedelta(minutes=45)).isoformat())
    harness.consumer.drain(NOW)
    assert harness.jobs() == {}
    [(status, error)] = sql(engine, "SELECT status, error FROM deliveries")
    assert status == "skipped" and "past the 1h grace" in error


def test_restart_reconciliation_restores_jobs_deleted_behind_its_back(engine, harness):
    add_workflow(engine, reminder())
    ids = seed(engine)
    for h in range(4):
        book(engine, ids, starts_at=at(hours=h), ends_at=at(hours=h, minutes=45))
    harness.consumer.drain(NOW)
    planned = harness.jobs()
    for (job,) in sql(engine, "SELECT id FROM apscheduler_jobs ORDER BY id LIMIT 2"):
        sql(engine, "DELETE FROM apscheduler_jobs WHERE id = :id", id=job)
    sql(engine, "INSERT INTO apscheduler_jobs (id, next_run_time, job_state) VALUES ('wf:99:appt:1', 4102444800, :s)",
        s=b"stale")
    assert harness.planner.reconcile(NOW) == (2, 1)
    assert harness.jobs() == planned


def fired_subjects(engine):
    return sql(engine, "SELECT occurrence, status, error FROM deliveries ORDER BY id")


def eventually(predicate, timeout=10.0):
    """What another thread does next: poll briefly until it holds."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert predicate()


def start_and_wait(harness, engine, predicate, timeout=20.0):
    harness.planner.start()
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert predicate(), fired_subjects(engine)


def put_job(harness, workflow, appointment, planned: dt.datetime, grace=dt.timedelta(hours=1)):
    job = date_job(harness.planner.scheduler, job_id=f"wf:{workflow}:appt:{appointment}",
                   func="scheduler.jobs:fire", args=(workflow, appointment, planned.isoformat()),
                   run_at=planned, grace=grace, name="test")
    harness.planner.store.replace_jobs([job])


def test_a_firing_missed_within_grace_runs_late(engine, harness):
    real_now = dt.datetime.now(UTC).replace(microsecond=0)
    harness.now = real_now
    workflow = add_workflow(engine, reminder("-30m"))
    starts = real_now + dt.timedelta(minutes=20)  # so the planned time (10 min ago) is within grace
    appointment = book(engine, seed(engine), starts_at=starts.isoformat(),
                       ends_at=(starts + dt.timedelta(minutes=45)).isoformat())
    sql(engine, "UPDATE change_events SET processed_at = :now", now=real_now.isoformat())
    put_job(harness, workflow, appointment, starts - dt.timedelta(minutes=30))  # as if the daemon was down
    start_and_wait(harness, engine, lambda: len(fired_subjects(engine)) == 1)
    [(occurrence, status, error)] = fired_subjects(engine)
    assert occurrence == f"at:{(starts - dt.timedelta(minutes=30)).isoformat()}" and status == "pending"


def test_a_firing_missed_beyond_grace_is_recorded_missed(engine, harness):
    real_now = dt.datetime.now(UTC).replace(microsecond=0)
    harness.now = real_now
    workflow = add_workflow(engine, reminder("-30m"))
    appointment = book(engine, seed(engine), starts_at=real_now.isoformat(),
                       ends_at=(real_now + dt.timedelta(minutes=45)).isoformat())
    sql(engine, "UPDATE change_events SET processed_at = :now", now=real_now.isoformat())
    planned = real_now - dt.timedelta(minutes=30)
    put_job(harness, workflow, appointment, planned, grace=dt.timedelta(minutes=5))
    start_and_wait(harness, engine, lambda: len(fired_subjects(engine)) == 1)
    [(occurrence, status, error)] = fired_subjects(engine)
    assert (occurrence, status) == (f"at:{planned.isoformat()}", "missed")
    assert error.startswith(f"missed: due at {planned.isoformat()}, the daemon was down until 30m later")
    eventually(lambda: harness.jobs() == {})  # APScheduler's loop removes it beside the listener


def test_a_job_that_cannot_be_restored_is_kept_and_reported(engine, harness, db_url):
    put_job(harness, 1, 1, NOW + dt.timedelta(days=1))
    [(state,)] = sql(engine, "SELECT job_state FROM apscheduler_jobs")
    broken = pickle.loads(state)
    broken["func"] = "scheduler.jobs:renamed_in_a_later_version"
    sql(engine, "UPDATE apscheduler_jobs SET job_state = :s", s=pickle.dumps(broken))
    harness.planner.start()
    harness.planner.scheduler.get_jobs()  # what the scheduler does on its loop: restore every job
    assert sql(engine, "SELECT count(*) FROM apscheduler_jobs") == [(0,)]
    [(job, error)] = sql(engine, "SELECT id, error FROM apscheduler_failed_jobs")
    assert job == "wf:1:appt:1" and "renamed_in_a_later_version" in error
    result = CliRunner().invoke(main, ["jobs"], env={"APPTFLOW_DATABASE_URL": db_url})
    assert "kept aside (cannot be restored): wf:1:appt:1" in result.output


def test_only_the_new_time_fires_after_a_reschedule(engine, harness):
    real_now = dt.datetime.now(UTC)
    harness.now = real_now
    workflow = add_workflow(engine, reminder("-1h"))
    first = real_now + dt.timedelta(hours=1, seconds=1)
    appointment = book(engine, seed(engine), starts_at=first.isoformat(),
                       ends_at=(first + dt.timedelta(minutes=45)).isoformat())
    harness.consumer.drain(real_now)
    second = first + dt.timedelta(seconds=1)
    sql(engine, "UPDATE appointments SET starts_at = :s WHERE id = :id", s=second.isoformat(), id=appointment)
    harness.consumer.drain(real_now)
    harness.now = second - dt.timedelta(hours=1)  # the clock the firing reads
    start_and_wait(harness, engine, lambda: len(fired_subjects(engine)) >= 1)
    # The first time comes before the second: had its job survived the reschedule, it would
    # have fired first, so the one firing seen must be the new time's.
    assert [o for o, _, _ in fired_subjects(engine)] == [f"at:{(second - dt.timedelta(hours=1)).isoformat()}"]
    assert workflow == 1
    eventually(lambda: harness.jobs() == {})  # APScheduler's loop removes the job beside its run


def test_jobs_lists_upcoming_firings_in_utc_and_local_time(engine, harness, db_url):
    workflow = add_workflow(engine, reminder("-30m"))
    appointment = book(engine, seed(engine), starts_at=at(), ends_at=at(minutes=45))
    harness.consumer.drain(NOW)
    result = CliRunner().invoke(main, ["jobs", "--workflow", str(workflow)],
                                env={"APPTFLOW_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    line = result.output.splitlines()[1]
    assert line.split() == ["2026-11-25", "08:30:00", "2026-11-25", "09:30:00", "CET", str(workflow),
                            "Reminder", str(appointment), "Ada", "Lovelace"]
    other = CliRunner().invoke(main, ["jobs", "--appointment", str(appointment + 1)],
                               env={"APPTFLOW_DATABASE_URL": db_url})
    assert other.output.strip() == "no upcoming firings"


def test_the_apscheduler_internals_apptflow_relies_on_are_still_there(harness):
    """APScheduler 3 private parts used behind scheduler.jobstore's one door: an upgrade must not remove them."""
    from scheduler.jobstore import apscheduler_lock, loop_thread

    scheduler = harness.planner.scheduler
    with apscheduler_lock(scheduler):  # its loop takes the same lock while it runs due jobs
        pass
    assert loop_thread(scheduler) is None  # not started yet
    harness.planner.start()
    assert loop_thread(scheduler).is_alive()


def test_a_job_built_from_its_state_is_the_job_add_job_builds(harness):
    from apscheduler.job import Job

    from scheduler.jobstore import MAX_INSTANCES, date_job

    run_at = NOW + dt.timedelta(hours=2)
    ours = date_job(harness.planner.scheduler, job_id="wf:1:appt:2", func="scheduler.jobs:fire",
                    args=(1, 2, run_at.isoformat()), run_at=run_at, grace=dt.timedelta(minutes=5), name="n")
    theirs = Job(harness.planner.scheduler, id="wf:1:appt:2", func="scheduler.jobs:fire",
                 trigger=ours.trigger, executor="default", args=(1, 2, run_at.isoformat()), kwargs={}, name="n",
                 misfire_grace_time=300, coalesce=True, max_instances=MAX_INSTANCES, next_run_time=run_at)
    assert ours.__getstate__() == theirs.__getstate__()
    assert ours.next_run_time == run_at and ours.func is theirs.func


def test_a_reconciliation_with_a_horizon_checks_only_the_firings_due_by_then(engine, harness):
    workflow = add_workflow(engine, reminder("-30m"))
    ids = seed(engine)
    near = book(engine, ids, starts_at=at(hours=1), ends_at=at(hours=1, minutes=45))
    far = book(engine, ids, starts_at=at(hours=30), ends_at=at(hours=30, minutes=45))
    harness.consumer.drain(NOW)
    planned = harness.jobs()
    assert set(planned) == {f"wf:{workflow}:appt:{near}", f"wf:{workflow}:appt:{far}"}
    sql(engine, "DELETE FROM apscheduler_jobs")  # behind the daemon's back
    assert harness.planner.reconcile(NOW, until=START + dt.timedelta(hours=2)) == (1, 0)
    assert harness.jobs() == {f"wf:{workflow}:appt:{near}": planned[f"wf:{workflow}:appt:{near}"]}
    assert harness.planner.reconcile(NOW) == (1, 0)  # the whole one, as the daemon starts leading
    assert harness.jobs() == planned
