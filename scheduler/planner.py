"""Time-offset firings: keep one APScheduler job per planned firing, fire it, record what was missed."""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from apscheduler.util import datetime_to_utc_timestamp
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from db import booking as bookings
from db import deliveries
from db import jobs as job_queries
from db.jobs import job_id, parse_job_id
from db import workflows as store
from db.codes import CapturedTable, DeliveryStatus, Operation
from db.connect import read_only
from db.errors import describe, unavailable
from db.records import Booking, ChangeEvent
from engine.durations import format_duration
from engine.errors import InvalidWorkflow
from engine.matching import Match
from engine.outbox import MAX_CHAIN_DEPTH, plan_deliveries
from engine.planning import (
    Firing,
    TooLate,
    anchor_column,
    earliest_anchor,
    grace_of,
    occurrence,
    is_planned,
    plan,
    still_planned,
)
from engine.windows import Window
from engine.workflow import Workflow
from scheduler import jobs
from scheduler.catalogue import parsed
from scheduler.jobstore import (
    ArgsRecordingExecutor,
    SafeJobStore,
    apscheduler_lock,
    date_job,
    loop_thread,
    make_scheduler,
)
from scheduler.leader import Share
from scheduler.metrics import Metrics
from scheduler.outage import GaveUp, Outage
from scheduler.recurring import DEFAULT_HORIZON, RecurringPlanner
from scheduler.workers import Handoff, Loaded

logger = logging.getLogger(__name__)

# Appointments read at once when reconciling; job ids read at once when looking for orphans.
PAGE, ORPHAN_PAGE = 2000, 10_000
# Due firings written in one transaction at most.
FIRE_BATCH = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class _Due:
    """A job APScheduler ran (or reported missed), waiting for the firing thread."""

    missed: bool
    workflow_id: int
    appointment_id: int
    planned_at: dt.datetime

    @property
    def extra(self) -> dict[str, int]:
        return {"workflow": self.workflow_id, "appointment": self.appointment_id}


class Planner:
    """Owns the APScheduler instance and keeps its jobs in line with appointments and workflows."""

    def __init__(self, engine: Engine, catalogue, *, clock: Callable[[], dt.datetime],
                 on_deliveries: Callable[[], None] = lambda: None, max_depth: int = MAX_CHAIN_DEPTH, threads: int = 4,
                 outage: Outage | None = None, metrics: Metrics | None = None, company_zone: str = "UTC",
                 horizon: dt.timedelta = DEFAULT_HORIZON, send_window: Window | None = None,
                 share: Share | None = None, handoff: Handoff | None = None):
        self.engine = engine
        # Where the deliveries a firing writes due at once go, claimed, with the workflows and bookings
        # just read: to a worker of this process (see Handoff).
        self.handoff = handoff
        # The partitions this instance leads (docs/scale-out.md): it plans and fires their jobs only.
        self.share = share or Share()
        self.outage = outage or Outage()
        self.send_window = send_window  # [workflows] send_window: quiet hours where an action has none
        self.metrics = metrics or Metrics()
        self.catalogue = catalogue
        self.clock = clock
        self.on_deliveries = on_deliveries
        self.max_depth = max_depth
        self.threads = threads
        # Appointments whose firing failed, and batches of events whose planning failed (the
        # database was away): planned again by retry_failed().
        self._failed: set[int] = set()
        self._unplanned: list[list[ChangeEvent]] = []
        self._failed_lock = threading.Lock()
        self._due: queue.SimpleQueue[_Due | None] = queue.SimpleQueue()
        self._firing: threading.Thread | None = None
        self._stopping = threading.Event()  # the firing thread stops waiting for the database
        self._build()
        self.recurring = RecurringPlanner(self, company_zone=company_zone, horizon=horizon)

    # --- lifecycle ---------------------------------------------------------

    def _build(self) -> None:
        # A shut-down APScheduler (and its executor) cannot start again: a new one each time we lead.
        self.store = SafeJobStore(self.engine, self.clock, self.outage, self.share)
        self.executor = ArgsRecordingExecutor(self.threads)
        self.scheduler = make_scheduler(self.store, self.executor)
        self.scheduler.add_listener(self._on_outcome, EVENT_JOB_MISSED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        self._used = False

    def start(self) -> None:
        """Start (or resume) APScheduler: jobs missed meanwhile run now (within grace) or are recorded missed.

        APScheduler is built once and only paused while this instance does not lead (see
        pause): leading again after an outage does not rebuild it.
        """
        jobs.register(self)
        if self._firing is None or not self._firing.is_alive():
            self._stopping.clear()
            self._firing = threading.Thread(target=self._fire_loop, name="apptflow-firing", daemon=True)
            self._firing.start()
        if self.scheduler.running:
            self.scheduler.resume()
            return
        if self._used:  # a shut-down APScheduler cannot start again
            self._build()
        self._used = True
        self.scheduler.start()

    def pause(self) -> None:
        """Stop scheduling at once (this instance no longer leads): no job runs until start()."""
        if self.scheduler.running:
            self.scheduler.pause()

    def stop(self) -> None:
        """Stop APScheduler, write the firings it had queued, then delete their jobs.

        A firing that cannot be written (the database is away) keeps its job: the next start
        fires it if it is still within its grace, or records it missed."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if self._firing is not None:
            self._stopping.set()
            self._due.put(None)
            self._firing.join()
            self._firing = None
        self.store.flush_removals()  # else the next leader runs them again (harmlessly: idempotent)
        jobs.unregister(self)

    def gain(self, partitions: set[int]) -> None:
        """These partitions are this instance's now (their jobs are in what its store returns): run the due
        ones at once. The daemon then reconciles them whole."""
        if self.scheduler.running:
            self.scheduler.wakeup()

    def lose(self, partitions: set[int]) -> None:
        """These partitions are no longer this instance's: from now on their jobs are not run here."""
        with apscheduler_lock(self.scheduler):
            self.store.forget(partitions)

    def ours(self, key: int, partitions: Collection[int] | None = None) -> bool:
        """Whether the subject with this id is in *partitions* (by default: every partition led here)."""
        return key % self.share.count in (self.share.held if partitions is None else partitions)

    def ensure_running(self) -> None:
        """Restart APScheduler if its loop thread died (its `running` flag does not tell)."""
        thread = loop_thread(self.scheduler)
        if self.scheduler.running and thread is not None and not thread.is_alive():
            logger.error("APScheduler's loop died; restarting it")
            self.scheduler.shutdown(wait=False)
            self.start()

    def retry_failed(self, now: dt.datetime) -> None:
        """Plan again what failed for want of a database: event batches, firings that errored."""
        with self._failed_lock:
            failed, self._failed = self._failed, set()
            unplanned, self._unplanned = self._unplanned, []
        try:
            while unplanned:
                self.after_batch(unplanned[0], now, remember=False)
                unplanned.pop(0)
            if failed:
                self.replan_appointments(failed, now)
        except Exception as error:
            if unavailable(error):  # still away: kept for the next try (else the reconciliations repair it)
                with self._failed_lock:
                    self._unplanned[:0] = unplanned
                    self._failed |= failed
            raise

    @property
    def behind(self) -> bool:
        """Whether planning that failed waits to be done again (see retry_failed)."""
        return bool(self._failed or self._unplanned)

    # --- planning ----------------------------------------------------------

    def _offset_workflows(self, ids: Iterable[int] | None = None) -> list[Workflow]:
        """The time-offset workflows (in its own transaction: a reload may record invalid rows' errors)."""
        wanted = set(ids) if ids is not None else None
        with self.engine.begin() as conn:
            return [w for w in self.catalogue.workflows(conn)
                    if is_planned(w) and (wanted is None or w.id in wanted)]

    def after_batch(self, batch: list[ChangeEvent], now: dt.datetime, *, remember: bool = True) -> None:
        """Follow a committed batch of change events: re-plan appointments, reconcile edited workflows.

        The events are already marked processed: if the database goes away meanwhile, the
        batch is kept (with *remember*) and planned again by retry_failed().
        """
        try:
            self._follow(batch, now)
        except Exception as error:
            if remember and unavailable(error):
                with self._failed_lock:
                    self._unplanned.append(batch)
            raise

    def _follow(self, batch: list[ChangeEvent], now: dt.datetime) -> None:
        appointments, customers, workflow_ids = set(), set(), set()
        for event in batch:
            if event.table_name == CapturedTable.APPOINTMENTS:
                appointments.add(event.row_id)
            elif event.table_name == CapturedTable.CUSTOMERS and event.op == Operation.UPDATE:
                customers.add(event.row_id)
            elif event.table_name == CapturedTable.WORKFLOWS:
                workflow_ids.add(event.row_id)
            elif event.table_name == CapturedTable.WORKFLOW_ACTIONS:
                workflow_ids.update(v["workflow_id"] for v in (event.old, event.new) if v)
        if customers:
            with read_only(self.engine) as conn:
                for customer in customers:
                    appointments.update(bookings.appointment_ids_of_customer(conn, customer))
        if workflow_ids:
            self.reconcile(now, workflow_ids=workflow_ids)
        if appointments:
            self.replan_appointments(appointments, now)
        self.recurring.after_batch(batch, now)

    def replan_appointments(self, appointment_ids: Iterable[int], now: dt.datetime) -> None:
        """Add, move or remove the jobs of these appointments; record firings planned too late as skipped."""
        workflows = self._offset_workflows()
        if not workflows:
            return  # no time-offset workflow: no job to have (a deleted one's jobs go with its own event)
        appointment_ids = {i for i in appointment_ids if self.ours(i)}  # other partitions' leaders plan theirs
        if not appointment_ids:
            return
        desired: dict[str, Firing] = {}
        late: list[tuple[Workflow, TooLate]] = []
        with read_only(self.engine) as conn:
            found = bookings.bookings_by_id(conn, appointment_ids)
            for appointment_id in appointment_ids:
                for workflow in workflows:
                    result = plan(workflow, found.get(appointment_id), now, send_window=self.send_window)
                    if isinstance(result, Firing) and not self._done(conn, result, now):
                        desired[job_id(workflow.id, appointment_id)] = result
                    elif isinstance(result, TooLate):
                        late.append((workflow, result))
        self._apply(desired, {job_id(w.id, a) for w in workflows for a in appointment_ids}, now)
        if late:
            self._record_late(late, now)

    def reconcile(self, now: dt.datetime, *, workflow_ids: Iterable[int] | None = None,
                  until: dt.datetime | None = None, partitions: Collection[int] | None = None) -> tuple[int, int]:
        """Make the jobs of these workflows (all, by default) match their future firings; return (written, removed).

        Only the jobs of *partitions* (by default, every partition this instance leads) are looked at.

        Appointments are read a page at a time and each page's jobs compared by id, so memory
        and each step stay bounded whatever the number of appointments; then a pass over the
        job ids removes the jobs whose workflow or appointment is gone. With *until*, only the
        firings due by then are checked, and the pass over job ids is left out: the periodic
        reconciliation's cost follows the coming firings, not the size of the tables.
        """
        started = time.monotonic()
        wanted = set(workflow_ids) if workflow_ids is not None else None
        parts = frozenset(self.share.held if partitions is None else partitions) & self.share.held
        if not parts:
            return 0, 0
        active = [w for w in self._offset_workflows(wanted) if w.enabled]
        written = removed = 0
        for workflow in active:
            anchor = anchor_column(workflow)
            latest = until - workflow.trigger.offset if until is not None else None
            with read_only(self.engine) as conn:
                for page in bookings.booking_pages(conn, anchor, earliest_anchor(workflow, now), PAGE, latest,
                                                   partitions=(self.share.count, parts)):
                    desired = {}
                    for booking in page:
                        result = plan(workflow, booking, now, send_window=self.send_window)
                        if isinstance(result, Firing) and not self._done(conn, result, now):
                            desired[job_id(workflow.id, booking.appointment.id)] = result
                    scope = {job_id(workflow.id, b.appointment.id) for b in page}
                    added, dropped = self._apply(desired, scope, now, log=False)
                    written, removed = written + added, removed + dropped
        if until is None:
            removed += self._remove_orphans({w.id for w in active}, wanted, now, parts)
        recurring = self.recurring.reconcile(now, workflow_ids=wanted, until=until, partitions=parts)
        written, removed = written + recurring[0], removed + recurring[1]
        if written or removed:
            logger.info("time-offset jobs reconciled: %d written, %d removed", written, removed)
        self.metrics.reconciled(time.monotonic() - started)
        return written, removed

    def _remove_orphans(self, active: set[int], wanted: set[int] | None, now: dt.datetime,
                        partitions: Collection[int]) -> int:
        """Remove the jobs (of the *wanted* workflows, or all; of these partitions) whose workflow is not an
        enabled time-offset one any more or whose appointment is gone; due ones are APScheduler's."""
        removed, last = 0, ""
        while True:
            with read_only(self.engine) as conn:
                page = job_queries.job_ids_after(conn, last, ORPHAN_PAGE)
                if not page:
                    return removed
                last = page[-1]
                ids = {i: parse_job_id(i) for i in page}
                ids = {i: p for i, p in ids.items() if p is not None and (wanted is None or p[0] in wanted)
                       and self.ours(p[1], partitions)}
                present = bookings.existing_appointments(conn, {p[1] for p in ids.values() if p})
            orphans = {i for i, p in ids.items()
                       if p is not None and (p[0] not in active or p[1] not in present)}
            removed += self._apply({}, orphans, now, log=False)[1]

    @staticmethod
    def _done(conn: Connection, firing: Firing, now: dt.datetime) -> bool:
        """A firing whose time has passed (or that ran early, for its send window) and that has already fired
        (or been recorded missed)."""
        return (firing.planned_at < now or firing.run_at <= now) and deliveries.occurrence_recorded(
            conn, firing.workflow_id, firing.appointment_id, occurrence(firing.planned_at))

    def _apply(self, desired: dict[str, Firing], scope: set[str], now: dt.datetime, *,
               log: bool = True) -> tuple[int, int]:
        """Write the desired jobs that differ, remove the in-scope jobs no longer desired.

        A job already due is APScheduler's to run or to record as missed: left alone.
        """
        if not desired and not scope:
            return 0, 0
        with apscheduler_lock(self.scheduler):  # its loop must not run a job we are rewriting
            # under the lock lose() takes: a partition given back meanwhile is not written to
            desired, scope = self.only_ours(desired, scope)
            self.store.flush_removals()  # a fired job's removal must not delete the job we write
            with read_only(self.engine) as conn:
                existing = job_queries.run_times_of(conn, desired.keys() | scope)
            # A job that has fired is gone as far as planning goes, even while its row waits for its
            # firing to be written: re-planned, it is written anew.
            existing = {i: t for i, t in existing.items() if i not in self.store.fired}
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
        self.count_planned(to_write)
        if to_write and self.scheduler.running:
            self.scheduler.wakeup()
        if log and (to_write or to_remove):
            logger.info("time-offset jobs: %d written, %d removed", len(to_write), len(to_remove))
        return len(to_write), len(to_remove)

    def only_ours(self, desired: dict, scope: set[str]) -> tuple[dict, set[str]]:
        """The jobs of the partitions this instance leads, of those to write and those to look at."""
        if self.share.everything:
            return desired, scope
        return ({i: f for i, f in desired.items() if self.ours(job_queries.partition_key(i))},
                {i for i in scope if self.ours(job_queries.partition_key(i))})

    def count_planned(self, jobs_written) -> None:
        counted = Counter(job_queries.partition_key(job.id) % self.share.count for job in jobs_written)
        for partition, count in counted.items():
            self.metrics.firings("planned", count, partition)

    def _record_late(self, late: list[tuple[Workflow, TooLate]], now: dt.datetime) -> None:
        rows = []
        for workflow, too_late in late:
            match = self._match(workflow, too_late.appointment_id, too_late.planned_at)
            rows += [{**row, "status": DeliveryStatus.SKIPPED, "error": too_late.reason}
                     for row in plan_deliveries(match, now, max_depth=self.max_depth)]
        with self.engine.begin() as conn:
            written = deliveries.insert_deliveries(conn, rows)
        for partition, count in Counter(t.appointment_id % self.share.count for _, t in late).items():
            self.metrics.firings("skipped", count, partition)
        if written:
            logger.info("%d time-offset deliveries recorded as skipped (planned too late)", written)

    @staticmethod
    def _match(workflow: Workflow, appointment_id: int, planned_at: dt.datetime) -> Match:
        return Match(workflow=workflow, subject_table=CapturedTable.APPOINTMENTS, subject_id=appointment_id,
                     occurrence=occurrence(planned_at),
                     context={"fire_time": planned_at.isoformat(),
                              "offset": format_duration(workflow.trigger.offset)})

    # --- firing ------------------------------------------------------------
    #
    # APScheduler's executor threads only queue a due job (fire) or a missed one (its listener);
    # one thread writes whatever has queued in one transaction: 1,000 reminders due in the same
    # second are a few transactions, not a thousand.

    def fire(self, workflow_id: int, appointment_id: int, planned_at: str) -> None:
        """A job is due (called by APScheduler): queue it for the firing thread."""
        self._due.put(_Due(missed=False, workflow_id=workflow_id, appointment_id=appointment_id,
                           planned_at=dt.datetime.fromisoformat(planned_at)))

    def _on_outcome(self, event) -> None:
        args = self.executor.pop_args(event.job_id, event.scheduled_run_time)
        if self.recurring.on_outcome(event, args):
            return
        if event.code == EVENT_JOB_ERROR:
            # APScheduler has removed the job: re-plan the appointment on the next loop.
            logger.error("time-offset job %s failed, will re-plan it: %s", event.job_id, event.exception)
            self._replan_later(parse_job_id(event.job_id))
        if event.code != EVENT_JOB_MISSED:
            return
        ids = parse_job_id(event.job_id)
        if ids is None or args is None:
            logger.error("job %s missed at %s (not an apptflow firing)", event.job_id, event.scheduled_run_time)
            with apscheduler_lock(self.scheduler):
                self.store.settle([event.job_id])  # nothing to write for it: its job may go
            return
        self._due.put(_Due(missed=True, workflow_id=ids[0], appointment_id=ids[1],
                           planned_at=dt.datetime.fromisoformat(args[2])))

    def _replan_later(self, ids: tuple[int, int] | None) -> None:
        if ids is not None:
            with self._failed_lock:
                self._failed.add(ids[1])

    def _fire_loop(self) -> None:
        """Write the queued firings, a batch at a time, until stop() queues None."""
        while True:
            batch = [self._due.get()]
            while batch[-1] is not None and len(batch) < FIRE_BATCH:
                try:
                    batch.append(self._due.get_nowait())
                except queue.Empty:
                    break
            due = [item for item in batch if item is not None]
            if due:
                self._fire_isolated(due)
            if batch[-1] is None:
                return

    def _fire_isolated(self, due: list[_Due]) -> None:
        """Write a batch, waiting for the database if it is away; a failing statement re-plans the
        batch, any other error is narrowed down to its firing."""
        try:
            self.outage.persist(f"writing {len(due)} due firings", lambda: self.fire_batch(due, self.clock()),
                                stopping=self._stopping)
        except GaveUp:
            # Their jobs are kept (not settled): the next start runs them again, within grace or as missed.
            logger.warning("%d due firings not written: the daemon stopped while the database was away; their "
                           "jobs are kept, and the next start fires those still within their grace and records "
                           "the others missed", len(due))
            return
        except SQLAlchemyError as error:
            logger.warning("cannot write %d due firings, they will be re-planned: %s", len(due), describe(error))
            for item in due:
                self._replan_later((item.workflow_id, item.appointment_id))
        except Exception:  # noqa: BLE001 - one bad firing must not take the others with it
            if len(due) > 1:
                for item in due:
                    self._fire_isolated([item])
                return
            logger.exception("time-offset firing of workflow %s for appointment %s failed, will re-plan it",
                             due[0].workflow_id, due[0].appointment_id)
            self._replan_later((due[0].workflow_id, due[0].appointment_id))
        self._settle(due)

    def _settle(self, due: list[_Due]) -> None:
        """These firings are written, or left to re-planning: delete their jobs (else at a later pass)."""
        with apscheduler_lock(self.scheduler):
            self.store.settle(job_id(item.workflow_id, item.appointment_id) for item in due)
            self.store.flush_removals()

    def fire_batch(self, due: list[_Due], now: dt.datetime) -> int:
        """Re-read everything, re-check each firing, write their deliveries in one transaction; return how many."""
        rows: list[dict] = []
        ran: list[_Due] = []
        claims = []
        with self.engine.begin() as conn:
            workflows = store.get_workflows(conn, {d.workflow_id for d in due})
            found = bookings.bookings_by_id(conn, {d.appointment_id for d in due})
            for item in due:
                workflow = self._parse(workflows.get(item.workflow_id), item.workflow_id)
                if workflow is None or not still_planned(workflow, found.get(item.appointment_id), item.planned_at):
                    logger.info("stale job for workflow %s, appointment %s at %s: nothing to do (the appointment "
                                "or workflow changed since it was planned)", item.workflow_id,
                                item.appointment_id, item.planned_at.isoformat(), extra=item.extra)
                    continue
                rows += self._firing_rows(workflow, item, found.get(item.appointment_id), now)
                ran.append(item)
            written = deliveries.insert_deliveries(conn, rows)
            if self.handoff is not None:  # those due at once go to a worker with what was just read
                claims = self.handoff.claim(conn, rows, now)
        for item in ran:
            self.metrics.firings("missed" if item.missed else "fired", partition=item.appointment_id % self.share.count)
            if not item.missed:
                self.metrics.late((now - item.planned_at).total_seconds())
        if self.handoff is not None:
            self.handoff.committed(claims, Loaded(workflows=workflows, bookings=found, customers={}), now,
                                  written, self.on_deliveries)
        elif written:
            self.on_deliveries()
        return written

    def _firing_rows(self, workflow: Workflow, item: _Due, booking: Booking, now: dt.datetime) -> list[dict]:
        planned = plan_deliveries(self._match(workflow, item.appointment_id, item.planned_at), now,
                                  max_depth=self.max_depth, booking=booking, send_window=self.send_window)
        if not item.missed:
            logger.info("workflow %s fired for appointment %s (planned %s, %.3fs late)", item.workflow_id,
                        item.appointment_id, item.planned_at.isoformat(), (now - item.planned_at).total_seconds(),
                        extra=item.extra)
            return planned
        late = format_duration(dt.timedelta(seconds=round((now - item.planned_at).total_seconds())))
        reason = (f"missed: due at {item.planned_at.isoformat()}, the daemon was down until {late} later "
                  f"(grace {format_duration(grace_of(workflow))})")
        logger.warning("workflow %s, appointment %s: %s", item.workflow_id, item.appointment_id, reason,
                       extra=item.extra)
        return [{**row, "status": DeliveryStatus.MISSED, "error": reason} for row in planned]

    @staticmethod
    def _parse(row, workflow_id: int) -> Workflow | None:
        if row is None:
            logger.info("time-offset job for workflow %s does nothing: the workflow is gone", workflow_id)
            return None
        try:
            return parsed(row)
        except InvalidWorkflow as error:
            logger.info("time-offset job for workflow %s does nothing: %s", workflow_id, error)
            return None
