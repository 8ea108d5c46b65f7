"""Recurring firings: ``schedule``, ``customer_birthday`` and ``customer_inactive`` in the same jobstore.

One APScheduler date job per workflow and target (``sched:{workflow}:staff:{id}``,
``bday:{workflow}:cust:{id}``, ``recall:{workflow}:cust:{id}``), calling
``scheduler.jobs:fire_recurring`` with primitive arguments only. A schedule's
job always holds its target's next cron occurrence and is written anew when it
fires. A customer's job exists only while its firing falls within the
reconciliation's horizon (two intervals): the periodic pass finds those by an
index range (the birthdays of two or three calendar days, the visits that ended
on the days whose lapse comes now), so its cost follows the firings to come,
not the number of customers. A change of a customer (birthday, zone, deletion)
or of one of their appointments re-plans that customer at once.

The grace and ``missed`` rules are the time-offset ones: a job whose time
passed while the daemon was down runs late within ``grace``, and is recorded
``missed`` beyond it; a firing already recorded is never planned again.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Collection, Iterable

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED
from apscheduler.util import datetime_to_utc_timestamp
from sqlalchemy.engine import Connection

from db import booking as bookings
from db import deliveries
from db import jobs as job_queries
from db import recurring as queries
from db import workflows as store
from db.connect import read_only
from db.records import ChangeEvent, Customer
from engine import recurring as rules
from engine.durations import format_duration
from engine.errors import InvalidWorkflow
from engine.matching import Facts, Match, facts_of, filters_hold
from engine.outbox import plan_deliveries
from engine.recurring import BIRTHDAY, RECALL, SCHEDULE, RecurringFiring, Target
from engine.templates import zone
from engine.triggers import RECURRING, trigger_type
from engine.triggers.inactive import DEFAULT_STATUSES, NOT_HAPPENING
from engine.triggers.offsets import DEFAULT_GRACE
from engine.workflow import Workflow
from scheduler import jobs
from scheduler.catalogue import parsed
from scheduler.jobstore import SchedulerStopping, apscheduler_lock, apscheduler_lock_from_job, date_job
from scheduler.outage import GaveUp

logger = logging.getLogger(__name__)

PREFIX_OF = {"schedule": SCHEDULE, "customer_birthday": BIRTHDAY, "customer_inactive": RECALL}
# The column of the appointments a schedule's target lists.
AGENDA_COLUMN = {"staff": "staff_id", "location": "location_id", "company": None}
DEFAULT_HORIZON = dt.timedelta(minutes=20)
ORPHAN_PAGE = 10_000
# How long a firing waits for the database in APScheduler's executor thread (it holds one of its threads,
# and the daemon's stop waits for it); past it, the reconciliation plans it again within its grace.
WAIT_FOR_DATABASE = 30.0


def grace_of(workflow: Workflow) -> dt.timedelta:
    return workflow.trigger.params.get("grace") or DEFAULT_GRACE


def _zone_named(name: str | None):
    """The zone *name* names, or None when it is empty or unknown."""
    found = zone(name)
    return found if name and found.key == name else None


class RecurringPlanner:
    """Plans, fires and records the recurring workflows' jobs; lives inside the :class:`Planner`,
    sharing its APScheduler, jobstore, metrics and outage reporting."""

    def __init__(self, planner, *, company_zone: str = "UTC", horizon: dt.timedelta = DEFAULT_HORIZON):
        self.planner = planner
        self.company_zone = zone(company_zone)
        self.horizon = horizon

    # --- which workflows, which zone ---------------------------------------------------------------

    def workflows(self, ids: Iterable[int] | None = None) -> list[Workflow]:
        wanted = set(ids) if ids is not None else None
        with self.planner.engine.begin() as conn:
            return [w for w in self.planner.catalogue.workflows(conn)
                    if trigger_type(w.trigger.type).planning == RECURRING and (wanted is None or w.id in wanted)]

    def customer_zone(self, customer: Customer | None, timezone: str | None = None):
        return _zone_named(customer.timezone if customer else timezone) or self.company_zone

    def _schedule_zone(self, workflow: Workflow, target: Target, zones: dict[int, str | None]):
        """The workflow's ``timezone``, else the target's own (a location's, where a staff member works
        next), else the company's."""
        return (_zone_named(workflow.trigger.params.get("timezone"))
                or (_zone_named(zones.get(target.id)) if target.kind != "company" else None)
                or self.company_zone)

    # --- planning ------------------------------------------------------------------------------------

    def reconcile(self, now: dt.datetime, *, workflow_ids: Iterable[int] | None = None,
                  until: dt.datetime | None = None, partitions: Collection[int] | None = None) -> tuple[int, int]:
        """Make the recurring jobs (of these workflows, or all; of these partitions, or all led here) match
        the firings due by *until* (else within the horizon); a whole pass (no *until*) also removes the
        jobs that should not exist."""
        wanted = set(workflow_ids) if workflow_ids is not None else None
        active = [w for w in self.workflows(wanted) if w.enabled]
        end = until or now + self.horizon
        written = removed = 0
        for workflow in active:
            with read_only(self.planner.engine) as conn:
                desired, scope = self._desired(conn, workflow, now, end, partitions)
            desired = {i: f for i, f in desired.items() if self._ours(f.target.id, partitions)}
            scope = {i for i in scope if self._ours(job_queries.partition_key(i), partitions)}
            added, dropped = self._apply(desired, scope, now)
            written, removed = written + added, removed + dropped
        if until is None:
            removed += self._remove_strays({w.id: w for w in active}, wanted, now, partitions)
        if written or removed:
            logger.info("recurring jobs reconciled: %d written, %d removed", written, removed)
        return written, removed

    def _ours(self, key: int, partitions: Collection[int] | None = None) -> bool:
        return self.planner.ours(key, partitions)

    def _desired(self, conn: Connection, workflow: Workflow, now: dt.datetime, end: dt.datetime,
                 partitions: Collection[int] | None = None) -> tuple[dict[str, RecurringFiring], set[str]]:
        prefix = PREFIX_OF[workflow.trigger.type]
        if prefix == SCHEDULE:
            firings = self._schedule_firings(conn, workflow, now)
            targets = {f.target for f in firings}
        else:
            grace = grace_of(workflow)
            if prefix == BIRTHDAY:
                ids = queries.customers_born_on(conn, rules.birthday_days(now - grace, end))
            else:
                params = workflow.trigger.params
                start, stop = rules.lapse_ends(now - grace, end, params["after"], params.get("time") is not None)
                ids = queries.visits_ended_between(conn, params.get("statuses") or DEFAULT_STATUSES, start, stop)
            ids = [i for i in ids if self._ours(i, partitions)]
            firings = self._customer_firings(conn, workflow, ids, now, end)
            targets = {Target(kind="cust", id=i) for i in ids}
        return ({f.job_id: f for f in firings},
                {rules.job_id(prefix, workflow.id, t) for t in targets})

    def replan_customers(self, customer_ids: Iterable[int], now: dt.datetime) -> None:
        """Add, move or remove the birthday and recall jobs of these customers."""
        customer_ids = {i for i in customer_ids if self._ours(i)}  # other partitions' leaders plan theirs
        if not customer_ids:
            return
        for workflow in self.workflows():
            prefix = PREFIX_OF[workflow.trigger.type]
            if prefix == SCHEDULE:
                continue
            desired: list[RecurringFiring] = []
            if workflow.enabled:
                with read_only(self.planner.engine) as conn:
                    desired = self._customer_firings(conn, workflow, customer_ids, now, now + self.horizon)
            scope = {rules.job_id(prefix, workflow.id, Target(kind="cust", id=i)) for i in customer_ids}
            self._apply({f.job_id: f for f in desired}, scope, now)

    def follows_customers(self) -> bool:
        """Whether some workflow plans a customer's own jobs (a birthday, a recall): then a change to an
        appointment re-plans its customer's too."""
        return any(PREFIX_OF[w.trigger.type] != SCHEDULE for w in self.workflows())

    def after_batch(self, batch: list[ChangeEvent], now: dt.datetime) -> None:
        """Re-plan the customers a batch of change events concerns: their own rows, their appointments'."""
        customers = set()
        for event in batch:
            if event.table_name == "customers":
                customers.add(event.row_id)
            elif event.table_name == "appointments":
                customers.update(v["customer_id"] for v in (event.old, event.new) if v and v.get("customer_id"))
        if customers and self.follows_customers():
            self.replan_customers(customers, now)

    # --- what each kind wants ---------------------------------------------------------------------------

    def _targets(self, conn: Connection, workflow: Workflow, now: dt.datetime) -> tuple[list[Target], dict]:
        """A schedule's targets (narrowed by its staff or locations filter) and their zones by id."""
        each, filters = workflow.trigger.params["for_each"], workflow.filters
        if each == "staff":
            ids = queries.staff_ids(conn, filters.staff)
            zones = queries.staff_zones(conn, ids, now) if not workflow.trigger.params.get("timezone") else {}
            return [Target(kind="staff", id=i) for i in ids], zones
        if each == "location":
            zones = queries.location_zones(conn, filters.locations)
            return [Target(kind="location", id=i) for i in zones], zones
        return [Target(kind="company", id=0)], {}

    def _schedule_firings(self, conn: Connection, workflow: Workflow, now: dt.datetime) -> list[RecurringFiring]:
        targets, zones = self._targets(conn, workflow, now)
        firings = []
        for target in targets:
            firing = self._next_schedule(workflow, target, self._schedule_zone(workflow, target, zones), now)
            if firing is not None:
                firings.append(firing)
        return firings

    def _next_schedule(self, workflow: Workflow, target: Target, tz, after: dt.datetime) -> RecurringFiring | None:
        moment = rules.next_cron(workflow.trigger.params["cron"], tz, after)
        if moment is None:
            return None
        return RecurringFiring(prefix=SCHEDULE, workflow_id=workflow.id, target=target, planned_at=moment,
                               run_at=moment, grace=grace_of(workflow), occurrence=f"at:{moment.isoformat()}")

    def _customer_firings(self, conn: Connection, workflow: Workflow, ids: Iterable[int], now: dt.datetime,
                          end: dt.datetime) -> list[RecurringFiring]:
        """The birthday or recall firings of these customers due within [now - grace, *end*], not yet recorded."""
        ids = set(ids)
        if not ids:
            return []
        grace, firings = grace_of(workflow), []
        for customer_id, planned_at, occurrence in self._occurrences(conn, workflow, ids, now, now - grace):
            run_at = rules.decide(planned_at, now, grace)
            if run_at is None or planned_at > end:
                continue
            firing = RecurringFiring(prefix=PREFIX_OF[workflow.trigger.type], workflow_id=workflow.id,
                                     target=Target(kind="cust", id=customer_id), planned_at=planned_at,
                                     run_at=run_at, grace=grace, occurrence=occurrence)
            if planned_at <= now and queries.occurrence_recorded(conn, workflow.id, "customers", customer_id,
                                                                occurrence):
                continue
            firings.append(firing)
        return firings

    def _occurrences(self, conn: Connection, workflow: Workflow, ids: set[int], now: dt.datetime,
                     since: dt.datetime) -> list[tuple[int, dt.datetime, str]]:
        """(customer, planned time, occurrence) of each customer's next firing at or after *since*."""
        params, dates = workflow.trigger.params, queries.customer_dates(conn, ids)
        at = rules.parse_time_of_day(params["time"]) if params.get("time") else None
        found = []
        if workflow.trigger.type == "customer_birthday":
            for customer_id, (birthday, timezone) in dates.items():
                if isinstance(birthday, dt.date):
                    day, moment = rules.next_birthday(birthday, at, self.customer_zone(None, timezone), since)
                    found.append((customer_id, moment, f"birthday:{day.isoformat()}"))
            return found
        statuses = params.get("statuses") or DEFAULT_STATUSES
        last = queries.last_visits(conn, dates, statuses)
        ahead = queries.booked_ahead(conn, last, now, NOT_HAPPENING)
        for customer_id, ended in last.items():
            if customer_id not in ahead:
                tz = self.customer_zone(None, dates[customer_id][1])
                found.append((customer_id, rules.lapse_at(ended, params["after"], at, tz),
                              f"lapse:{ended.isoformat()}"))
        return found

    # --- writing jobs ------------------------------------------------------------------------------------

    def _apply(self, desired: dict[str, RecurringFiring], scope: set[str], now: dt.datetime, *,
               from_job: bool = False) -> tuple[int, int]:
        """Write the desired jobs that differ, remove the in-scope ones no longer desired; a job already
        due is APScheduler's to run or to record missed."""
        if not desired and not scope:
            return 0, 0
        planner = self.planner
        lock = apscheduler_lock_from_job if from_job else apscheduler_lock
        with lock(planner.scheduler):  # its loop must not run a job we are rewriting
            # under the lock lose() takes: a partition given back meanwhile is not written to
            desired, scope = planner.only_ours(desired, scope)
            planner.store.flush_removals()  # a fired job's removal must not delete the job we write
            with read_only(planner.engine) as conn:
                existing = job_queries.run_times_of(conn, desired.keys() | scope)
            existing = {i: t for i, t in existing.items() if i not in planner.store.fired}  # run, not yet gone
            due = {i for i, t in existing.items() if t is not None and t <= datetime_to_utc_timestamp(now)}
            to_write = [self._job(f) for i, f in desired.items()
                        if i not in due and existing.get(i) != datetime_to_utc_timestamp(f.run_at)]
            to_remove = [i for i in scope if i not in desired and i not in due and i in existing]
            if to_write:
                planner.store.replace_jobs(to_write)
            if to_remove:
                planner.store.remove_jobs(to_remove)
        planner.count_planned(to_write)
        if to_write and planner.scheduler.running:
            planner.scheduler.wakeup()
        return len(to_write), len(to_remove)

    def _job(self, firing: RecurringFiring):
        return date_job(self.planner.scheduler, job_id=firing.job_id, func=jobs.FIRE_RECURRING,
                        run_at=firing.run_at, grace=firing.grace,
                        args=(firing.prefix, firing.workflow_id, firing.target.kind, firing.target.id,
                              firing.planned_at.isoformat()),
                        name=f"workflow {firing.workflow_id}, {firing.target.kind} {firing.target.id}")

    def _remove_strays(self, active: dict[int, Workflow], wanted: set[int] | None, now: dt.datetime,
                       partitions: Collection[int] | None = None) -> int:
        """Remove the recurring jobs (of the *wanted* workflows, or all) whose workflow is gone, disabled
        or of another kind now, whose schedule target is gone, or whose customer's firing no longer holds."""
        removed, last = 0, ""
        while True:
            with read_only(self.planner.engine) as conn:
                page = job_queries.job_ids_after(conn, last, ORPHAN_PAGE)
                if not page:
                    return removed
                last = page[-1]
                page = [job for job in page if self._ours(job_queries.partition_key(job), partitions)]
                strays = self._strays(conn, page, active, wanted, now)
            removed += self._apply({}, strays, now)[1]

    def _strays(self, conn: Connection, page: list[str], active: dict[int, Workflow], wanted: set[int] | None,
                now: dt.datetime) -> set[str]:
        strays, customers = set(), {}
        for job in page:
            found = rules.parse_job_id(job)
            if found is None or (wanted is not None and found[1] not in wanted):
                continue
            prefix, workflow_id, target = found
            workflow = active.get(workflow_id)
            if workflow is None or PREFIX_OF[workflow.trigger.type] != prefix:
                strays.add(job)
            elif prefix != SCHEDULE:
                customers.setdefault(workflow_id, {})[target.id] = job
        for workflow_id, jobs_of in customers.items():
            workflow = active[workflow_id]
            kept = {f.job_id for f in self._customer_firings(conn, workflow, jobs_of, now, dt.datetime.max.replace(
                tzinfo=dt.timezone.utc))}
            strays.update(job for job in jobs_of.values() if job not in kept)
        return strays | self._schedule_strays(conn, page, active, wanted, now)

    def _schedule_strays(self, conn, page, active, wanted, now) -> set[str]:
        targets = {}
        for workflow in active.values():
            if PREFIX_OF[workflow.trigger.type] == SCHEDULE and (wanted is None or workflow.id in wanted):
                targets[workflow.id] = {rules.job_id(SCHEDULE, workflow.id, t)
                                        for t in self._targets(conn, workflow, now)[0]}
        return {job for job in page if job.startswith(f"{SCHEDULE}:")
                and (found := rules.parse_job_id(job)) is not None and found[1] in targets
                and job not in targets[found[1]]}

    # --- firing ------------------------------------------------------------------------------------------

    def fire(self, prefix: str, workflow_id: int, kind: str, target_id: int, planned_at: str,
             missed: bool = False) -> None:
        """A recurring job is due (APScheduler's executor thread), or was missed: write its deliveries,
        waiting for the database if it is away; then plan a schedule's next occurrence."""
        target, planned = Target(kind=kind, id=target_id), dt.datetime.fromisoformat(planned_at)
        planner = self.planner
        try:
            planner.outage.persist(f"writing the recurring firing {prefix}:{workflow_id}:{kind}:{target_id}",
                                   lambda: self.fire_one(prefix, workflow_id, target, planned, planner.clock(),
                                                         missed=missed),
                                   deadline=time.monotonic() + WAIT_FOR_DATABASE, stopping=planner._stopping)
        except GaveUp:
            logger.warning("recurring firing of workflow %s for %s %s not written: the daemon stopped while the "
                           "database was away; its job stays, for the next start", workflow_id, kind, target_id)
            return
        try:
            with apscheduler_lock_from_job(planner.scheduler):  # its firing is written: the job may go
                planner.store.settle([rules.job_id(prefix, workflow_id, target)])
            if prefix == SCHEDULE:
                self._plan_next(workflow_id, target, planned)
        except SchedulerStopping:  # the job stays; the next start re-plans (its deliveries are written once)
            logger.info("the daemon is stopping: the recurring job of workflow %s for %s %s is left to the next "
                        "start", workflow_id, kind, target_id)

    def _plan_next(self, workflow_id: int, target: Target, planned: dt.datetime) -> None:
        now = self.planner.clock()
        workflow = next((w for w in self.workflows({workflow_id}) if w.enabled), None)
        if workflow is None or PREFIX_OF[workflow.trigger.type] != SCHEDULE:
            return
        with read_only(self.planner.engine) as conn:
            targets, zones = self._targets(conn, workflow, now)
        if target not in targets:
            return
        tz = self._schedule_zone(workflow, target, zones)
        firing = self._next_schedule(workflow, target, tz, max(planned, now))
        if firing is not None:
            self._apply({firing.job_id: firing}, set(), now, from_job=True)

    def on_outcome(self, event, args: tuple | None) -> bool:
        """APScheduler's outcome of a recurring job: a missed one is recorded; False for other jobs."""
        found = rules.parse_job_id(event.job_id)
        if found is None:
            return False
        if event.code == EVENT_JOB_MISSED and args is not None:
            self.fire(*args, missed=True)
        elif event.code == EVENT_JOB_ERROR:
            logger.error("recurring job %s failed: %s; the next reconciliation plans it again", event.job_id,
                         event.exception)
        return True

    def fire_one(self, prefix: str, workflow_id: int, target: Target, planned_at: dt.datetime,
                 now: dt.datetime, *, missed: bool = False) -> int:
        """Re-read the workflow and the target, check the occurrence still stands, write its deliveries."""
        planner = self.planner
        with planner.engine.begin() as conn:
            workflow = self._workflow(conn, workflow_id, prefix)
            match = workflow and self._match(conn, workflow, target, planned_at, now)
            if match is None:
                return 0
            rows = plan_deliveries(match, now, max_depth=planner.max_depth)
            if missed:
                reason = (f"missed: due at {planned_at.isoformat()}, the daemon was down until "
                          f"{format_duration(dt.timedelta(seconds=round((now - planned_at).total_seconds())))} "
                          f"later (grace {format_duration(grace_of(workflow))})")
                rows = [{**row, "status": "missed", "error": reason} for row in rows]
            written = deliveries.insert_deliveries(conn, rows)
        planner.metrics.firings("missed" if missed else "fired", partition=target.id % planner.share.count)
        if not missed:
            planner.metrics.late((now - planned_at).total_seconds())
            logger.info("workflow %s fired for %s %s (planned %s, %.3fs late)", workflow_id, target.kind, target.id,
                        planned_at.isoformat(), (now - planned_at).total_seconds(), extra={"workflow": workflow_id})
        if written:
            planner.on_deliveries()
        return written

    @staticmethod
    def _workflow(conn: Connection, workflow_id: int, prefix: str) -> Workflow | None:
        row = store.get_workflows(conn, {workflow_id}).get(workflow_id)
        try:
            workflow = parsed(row) if row is not None else None
        except InvalidWorkflow:
            workflow = None
        if workflow is None or not workflow.enabled or PREFIX_OF.get(workflow.trigger.type) != prefix:
            logger.info("recurring job for workflow %s does nothing: the workflow is gone, invalid, disabled or "
                        "of another trigger now", workflow_id)
            return None
        return workflow

    def _match(self, conn: Connection, workflow: Workflow, target: Target, planned_at: dt.datetime,
               now: dt.datetime) -> Match | None:
        if target.kind == "cust":
            return self._customer_match(conn, workflow, target, planned_at, now)
        return self._agenda_match(conn, workflow, target, planned_at, now)

    def _customer_match(self, conn, workflow, target, planned_at, now) -> Match | None:
        customer = bookings.load_customer(conn, target.id)
        stands = [o for c, at, o in self._occurrences(conn, workflow, {target.id}, now,
                                                       planned_at - dt.timedelta(microseconds=1))
                  if at == planned_at]
        if customer is None or not stands or not filters_hold(workflow.filters, Facts(locale=customer.locale)):
            logger.info("stale recurring job for workflow %s, customer %s at %s: nothing to do (the customer or "
                        "their visits changed since it was planned)", workflow.id, target.id,
                        planned_at.isoformat(), extra={"workflow": workflow.id})
            return None
        context = {"fire_time": planned_at.isoformat(), "zone": self.customer_zone(customer).key}
        if stands[0].startswith("lapse:"):
            context["last_visit_at"] = stands[0].removeprefix("lapse:")
        return Match(workflow=workflow, subject_table="customers", subject_id=target.id, occurrence=stands[0],
                     context=context)

    def _agenda_match(self, conn, workflow, target, planned_at, now) -> Match | None:
        targets, zones = self._targets(conn, workflow, now)
        tz = self._schedule_zone(workflow, target, zones)
        if target not in targets or rules.next_cron(workflow.trigger.params["cron"], tz,
                                                    planned_at - dt.timedelta(seconds=1)) != planned_at:
            logger.info("stale schedule job for workflow %s, %s %s at %s: nothing to do", workflow.id, target.kind,
                        target.id, planned_at.isoformat(), extra={"workflow": workflow.id})
            return None
        window = (rules.parse_window(workflow.trigger.params["window"]) if workflow.trigger.params.get("window")
                  else rules.DEFAULT_WINDOW)
        start, end = window.bounds(planned_at, tz)
        ids = queries.agenda(conn, AGENDA_COLUMN[target.kind], target.id, start, end)
        listed = [b.appointment.id for b in bookings.load_bookings(conn, ids)
                  if filters_hold(workflow.filters, facts_of(b))]
        if not listed and workflow.trigger.params.get("skip_empty") is not False:
            logger.info("schedule of workflow %s: nothing for %s %s within its window, nothing sent",
                        workflow.id, target.kind, target.id, extra={"workflow": workflow.id})
            return None
        context = {"fire_time": planned_at.isoformat(), "window_start": start.isoformat(),
                   "window_end": end.isoformat(), "appointment_ids": listed, "zone": tz.key,
                   "locale": workflow.trigger.params.get("locale") or "en"}
        return Match(workflow=workflow, subject_table=target.subject_table, subject_id=target.id,
                     occurrence=f"at:{planned_at.isoformat()}", context=context)


def listed_jobs(conn: Connection, workflow_id: int | None = None) -> list[tuple[dt.datetime, int, str]]:
    """The recurring jobs (of one workflow, or all), soonest first: (when, workflow id, whom for)."""
    found = []
    for job, timestamp in queries.run_times_by_prefix(conn, [f"{p}:" for p in rules.PREFIXES]).items():
        parsed_id = rules.parse_job_id(job)
        if parsed_id is None or timestamp is None or (workflow_id is not None and parsed_id[1] != workflow_id):
            continue
        target = parsed_id[2]
        whom = "the company" if target.kind == "company" else \
            f"{'customer' if target.kind == 'cust' else target.kind} {target.id}"
        found.append((dt.datetime.fromtimestamp(timestamp, dt.timezone.utc), parsed_id[1], whom))
    return sorted(found)
