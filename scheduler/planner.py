"""Time-offset firings: keep one APScheduler job per planned firing, fire it, record what was missed."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from apscheduler.util import datetime_to_utc_timestamp
from sqlalchemy.engine import Connection, Engine

from db import NotFound
from db import booking as bookings
from db import deliveries
from db import jobs as job_queries
from db.connect import read_only
from db import workflows as store
from db.records import ChangeEvent
from engine.document import workflow_from_row
from engine.durations import format_duration
from engine.errors import InvalidWorkflow
from engine.matching import Match
from engine.outbox import plan_deliveries
from engine.planning import (
    Firing,
    TooLate,
    earliest_anchor,
    grace_of,
    job_id,
    occurrence,
    parse_job_id,
    plan,
    still_planned,
)
from engine.workflow import Workflow
from scheduler import jobs
from scheduler.jobstore import ArgsRecordingExecutor, SafeJobStore, date_job, make_scheduler

logger = logging.getLogger(__name__)


class Planner:
    """Owns the APScheduler instance and keeps its jobs in line with appointments and workflows."""

    def __init__(self, engine: Engine, catalogue, *, clock: Callable[[], dt.datetime],
                 on_deliveries: Callable[[], None] = lambda: None, max_depth: int = 5, threads: int = 4):
        self.engine = engine
        self.catalogue = catalogue
        self.clock = clock
        self.on_deliveries = on_deliveries
        self.max_depth = max_depth
        self.threads = threads
        # Appointments whose firing failed (the database was away): re-planned by retry_failed().
        self._failed: set[int] = set()
        self._failed_lock = threading.Lock()
        self._build()

    # --- lifecycle ---------------------------------------------------------

    def _build(self) -> None:
        # A shut-down APScheduler (and its executor) cannot start again: a new one each time we lead.
        self.store = SafeJobStore(self.engine, self.clock)
        self.executor = ArgsRecordingExecutor(self.threads)
        self.scheduler = make_scheduler(self.store, self.executor)
        self.scheduler.add_listener(self._on_outcome, EVENT_JOB_MISSED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        self._used = False

    def start(self) -> None:
        """Start APScheduler: jobs missed while down run now (within grace) or are recorded missed."""
        if self._used:
            self._build()
        self._used = True
        jobs.register(self)
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        jobs.register(None)

    def ensure_running(self) -> None:
        """Restart APScheduler if its loop thread died (its `running` flag does not tell)."""
        thread = getattr(self.scheduler, "_thread", None)  # BackgroundScheduler's loop, APScheduler 3.x
        if self.scheduler.running and thread is not None and not thread.is_alive():
            logger.error("APScheduler's loop died; restarting it")
            self.scheduler.shutdown(wait=False)
            self.start()

    def retry_failed(self, now: dt.datetime) -> None:
        """Re-plan the appointments whose firing failed, now that the database may be back."""
        with self._failed_lock:
            failed, self._failed = self._failed, set()
        if failed:
            self.replan_appointments(failed, now)

    # --- planning ----------------------------------------------------------

    def _offset_workflows(self, ids: Iterable[int] | None = None) -> list[Workflow]:
        """The time-offset workflows (in its own transaction: a reload may record invalid rows' errors)."""
        wanted = set(ids) if ids is not None else None
        with self.engine.begin() as conn:
            return [w for w in self.catalogue.workflows(conn)
                    if w.trigger.is_time_offset and (wanted is None or w.id in wanted)]

    def after_batch(self, batch: list[ChangeEvent], now: dt.datetime) -> None:
        """Follow a committed batch of change events: re-plan appointments, reconcile edited workflows."""
        appointments, customers, workflow_ids = set(), set(), set()
        for event in batch:
            if event.table_name == "appointments":
                appointments.add(event.row_id)
            elif event.table_name == "customers" and event.op == "UPDATE":
                customers.add(event.row_id)
            elif event.table_name == "workflows":
                workflow_ids.add(event.row_id)
            elif event.table_name == "workflow_actions":
                workflow_ids.update(v["workflow_id"] for v in (event.old, event.new) if v)
        if customers:
            with read_only(self.engine) as conn:
                for customer in customers:
                    appointments.update(bookings.appointment_ids_of_customer(conn, customer))
        if workflow_ids:
            self.reconcile(now, workflow_ids=workflow_ids)
        if appointments:
            self.replan_appointments(appointments, now)

    def replan_appointments(self, appointment_ids: Iterable[int], now: dt.datetime) -> None:
        """Add, move or remove the jobs of these appointments; record firings planned too late as skipped."""
        desired: dict[str, Firing] = {}
        late: list[tuple[Workflow, TooLate]] = []
        scope: set[str] = set()
        workflows = self._offset_workflows()
        with read_only(self.engine) as conn:
            for appointment_id in appointment_ids:
                scope.update(job_queries.run_times(conn, like=f"wf:%:appt:{appointment_id}"))
                booking = bookings.load_booking(conn, appointment_id)
                for workflow in workflows:
                    result = plan(workflow, booking, now)
                    if isinstance(result, Firing) and not self._done(conn, result, now):
                        desired[job_id(workflow.id, appointment_id)] = result
                    elif isinstance(result, TooLate):
                        late.append((workflow, result))
        self._apply(desired, scope, now)
        if late:
            self._record_late(late, now)

    def reconcile(self, now: dt.datetime, *, workflow_ids: Iterable[int] | None = None) -> tuple[int, int]:
        """Make the jobs of these workflows (all, by default) match their future firings; return (written, removed)."""
        desired: dict[str, Firing] = {}
        workflows = self._offset_workflows(workflow_ids)
        with read_only(self.engine) as conn:
            if workflow_ids is None:
                scope = set(job_queries.run_times(conn, like="wf:%"))
            else:
                scope = {i for w in set(workflow_ids) for i in job_queries.run_times(conn, like=f"wf:{w}:%")}
            for workflow in workflows:
                if not workflow.enabled:
                    continue
                anchor = "starts_at" if workflow.trigger.type == "appointment_starts" else "ends_at"
                for booking in bookings.load_bookings_from(conn, anchor, earliest_anchor(workflow, now)):
                    result = plan(workflow, booking, now)
                    if isinstance(result, Firing) and not self._done(conn, result, now):
                        desired[job_id(workflow.id, booking.appointment.id)] = result
        return self._apply(desired, scope, now)

    @staticmethod
    def _done(conn: Connection, firing: Firing, now: dt.datetime) -> bool:
        """A firing whose time has passed and that has already fired (or been recorded missed)."""
        return firing.planned_at < now and deliveries.occurrence_recorded(
            conn, firing.workflow_id, firing.appointment_id, occurrence(firing.planned_at))

    def _apply(self, desired: dict[str, Firing], scope: set[str], now: dt.datetime) -> tuple[int, int]:
        """Write the desired jobs that differ, remove the in-scope jobs no longer desired.

        A job already due is APScheduler's to run or to record as missed: left alone.
        """
        # APScheduler's own lock: its loop must not run a job we are rewriting (a private
        # attribute, stable across APScheduler 3.x).
        with self.scheduler._jobstores_lock:
            with read_only(self.engine) as conn:
                existing = job_queries.run_times(conn, like="wf:%") if desired or scope else {}
            due = {i for i, t in existing.items() if t is not None and t <= datetime_to_utc_timestamp(now)}
            to_write = [
                date_job(self.scheduler, job_id=i, func=jobs.FIRE, run_at=f.run_at, grace=f.grace,
                         args=(f.workflow_id, f.appointment_id, f.planned_at.isoformat()),
                         name=f"workflow {f.workflow_id}, appointment {f.appointment_id}")
                for i, f in desired.items()
                if i not in due and existing.get(i) != datetime_to_utc_timestamp(f.run_at)
            ]
            to_remove = [i for i in scope if i not in desired and i not in due and i in existing]
            if to_write:
                self.store.replace_jobs(to_write)
            if to_remove:
                self.store.remove_jobs(to_remove)
        if to_write and self.scheduler.running:
            self.scheduler.wakeup()
        if to_write or to_remove:
            logger.info("time-offset jobs: %d written, %d removed", len(to_write), len(to_remove))
        return len(to_write), len(to_remove)

    def _record_late(self, late: list[tuple[Workflow, TooLate]], now: dt.datetime) -> None:
        rows = []
        for workflow, too_late in late:
            match = self._match(workflow, too_late.appointment_id, too_late.planned_at)
            rows += [{**row, "status": "skipped", "error": too_late.reason}
                     for row in plan_deliveries(match, now, max_depth=self.max_depth)]
        with self.engine.begin() as conn:
            written = deliveries.insert_deliveries(conn, rows)
        if written:
            logger.info("%d time-offset deliveries recorded as skipped (planned too late)", written)

    @staticmethod
    def _match(workflow: Workflow, appointment_id: int, planned_at: dt.datetime) -> Match:
        return Match(workflow=workflow, subject_table="appointments", subject_id=appointment_id,
                     occurrence=occurrence(planned_at),
                     context={"fire_time": planned_at.isoformat(),
                              "offset": format_duration(workflow.trigger.offset)})

    # --- firing ------------------------------------------------------------

    def _load(self, conn: Connection, workflow_id: int) -> Workflow | None:
        try:
            return workflow_from_row(store.get_workflow(conn, workflow_id))
        except (NotFound, InvalidWorkflow) as error:
            logger.info("time-offset job for workflow %s does nothing: %s", workflow_id, error)
            return None

    def fire(self, workflow_id: int, appointment_id: int, planned_at: str) -> None:
        """A job is due: re-read everything, re-check, and write the deliveries (or say why not)."""
        now = self.clock()
        planned = dt.datetime.fromisoformat(planned_at)
        extra = {"workflow": workflow_id, "appointment": appointment_id}
        with self.engine.begin() as conn:
            workflow = self._load(conn, workflow_id)
            booking = bookings.load_booking(conn, appointment_id)
            if workflow is None or not still_planned(workflow, booking, planned):
                logger.info("stale job for workflow %s, appointment %s at %s: nothing to do (the appointment "
                            "or workflow changed since it was planned)", workflow_id, appointment_id,
                            planned_at, extra=extra)
                return
            rows = plan_deliveries(self._match(workflow, appointment_id, planned), now, max_depth=self.max_depth)
            written = deliveries.insert_deliveries(conn, rows)
        lateness = (now - planned).total_seconds()
        logger.info("workflow %s fired for appointment %s (planned %s, %.3fs late): %d deliveries",
                    workflow_id, appointment_id, planned_at, lateness, written, extra=extra)
        self.on_deliveries()

    def _on_outcome(self, event) -> None:
        args = self.executor.pop_args(event.job_id, event.scheduled_run_time)
        if event.code != EVENT_JOB_MISSED:
            if event.code == EVENT_JOB_ERROR:
                # APScheduler has removed the job: re-plan the appointment on the next loop.
                logger.error("time-offset job %s failed, will re-plan it: %s", event.job_id, event.exception)
                ids = parse_job_id(event.job_id)
                if ids is not None:
                    with self._failed_lock:
                        self._failed.add(ids[1])
            return
        ids = parse_job_id(event.job_id)
        if ids is None or args is None:
            logger.error("job %s missed at %s (not an apptflow firing)", event.job_id, event.scheduled_run_time)
            return
        try:
            self.record_missed(*ids, planned_at=dt.datetime.fromisoformat(args[2]), now=self.clock())
        except Exception:  # noqa: BLE001 - a listener must not break APScheduler's loop
            logger.exception("could not record the missed firing of job %s", event.job_id)

    def record_missed(self, workflow_id: int, appointment_id: int, *, planned_at: dt.datetime,
                      now: dt.datetime) -> int:
        """A firing the daemon was down for beyond its grace: record its deliveries as missed."""
        with self.engine.begin() as conn:
            workflow = self._load(conn, workflow_id)
            if workflow is None or not still_planned(workflow, bookings.load_booking(conn, appointment_id),
                                                     planned_at):
                logger.info("job %s for appointment %s missed, but it no longer applies: nothing recorded",
                            workflow_id, appointment_id)
                return 0
            late = format_duration(dt.timedelta(seconds=round((now - planned_at).total_seconds())))
            reason = (f"missed: due at {planned_at.isoformat()}, the daemon was down until {late} later "
                      f"(grace {format_duration(grace_of(workflow))})")
            rows = [{**row, "status": "missed", "error": reason}
                    for row in plan_deliveries(self._match(workflow, appointment_id, planned_at), now,
                                               max_depth=self.max_depth)]
            written = deliveries.insert_deliveries(conn, rows)
        logger.warning("workflow %s, appointment %s: %s", workflow_id, appointment_id, reason,
                       extra={"workflow": workflow_id, "appointment": appointment_id})
        return written
