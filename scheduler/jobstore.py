"""APScheduler 3 wiring: a jobstore that keeps unrestorable jobs and writes in batches, and the scheduler."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import pickle
import threading
from contextlib import contextmanager

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.date import DateTrigger
from apscheduler.util import check_callable_args, datetime_to_utc_timestamp, ref_to_obj, utc_timestamp_to_datetime
from sqlalchemy.exc import SQLAlchemyError

from db import jobs as job_queries
from db.errors import describe, unavailable
from db.tables import apscheduler_jobs
from scheduler.leader import Share
from scheduler.outage import Outage

logger = logging.getLogger(__name__)

UTC = dt.timezone.utc
# APScheduler's loop asks again this soon when the database did not answer.
RETRY_SECONDS = 1
# Firings are idempotent (the planned time is in their key), so a job re-planned while its
# previous run is still going may run beside it rather than be dropped.
MAX_INSTANCES = 3


class SafeJobStore(SQLAlchemyJobStore):
    """SQLAlchemyJobStore that sets aside, instead of deleting, a job it cannot restore, and writes in batches.

    APScheduler deletes a job whose function reference no longer resolves or
    whose state no longer unpickles; here it moves to
    ``apscheduler_failed_jobs`` with the error, is logged once, and
    ``apptflow jobs`` / ``apptflow status`` report it.
    """

    def __init__(self, engine, clock, outage: Outage | None = None, share: Share | None = None):
        super().__init__(engine=engine, tablename=apscheduler_jobs.name)
        # The partitions whose jobs this store returns (docs/scale-out.md): the others are other instances'.
        self.share = share or Share()
        self.outage = outage or Outage()  # told of every failure to reach the database (it says so, once a second)
        # APScheduler's statements and ours then name one Table object.
        self.jobs_t = apscheduler_jobs
        self.clock = clock
        # Jobs APScheduler has run and asked to remove (see remove_job), left out of what this store
        # returns; of them, those whose firing is written (settle), deleted together once per pass of
        # its loop. Guarded by APScheduler's own lock, which every caller holds.
        self._fired: set[str] = set()
        self._settled: set[str] = set()

    def start(self, scheduler, alias):
        super(SQLAlchemyJobStore, self).start(scheduler, alias)  # the table is created by `db init`

    def shutdown(self):
        pass  # the engine is the daemon's, not ours to dispose

    def _mine(self):
        return job_queries.in_partitions(self.share.count, self.share.held)

    def _get_jobs(self, *conditions):
        jobs, broken = [], {}
        with self.engine.connect() as conn:
            rows = job_queries.job_states(conn, *conditions, self._mine())
        for row in rows:
            try:
                jobs.append(self._reconstitute_job(row.job_state))
            except BaseException as error:  # noqa: BLE001 - whatever unpickling raises
                broken[row.id] = f"{type(error).__name__}: {error}"
        jobs = [job for job in jobs if job.id not in self._fired]
        if broken:
            with self.engine.begin() as conn:
                for job_id, error in broken.items():
                    job_queries.set_aside(conn, job_id, error, self.clock())
            for job_id, error in broken.items():
                logger.error("job %s cannot be restored and was set aside (see `apptflow jobs`): %s",
                             job_id, error)
        return jobs

    # APScheduler 3 calls the next methods from its scheduling loop without handling their
    # errors: one failed statement would end the loop (and every later firing) silently.

    def _failed(self, what: str, error: SQLAlchemyError) -> None:
        if unavailable(error):
            self.outage.failed(what, error)
        else:
            logger.warning("%s failed: %s", what, describe(error))

    def get_due_jobs(self, now):
        try:
            return super().get_due_jobs(now)
        except SQLAlchemyError as error:
            self._failed("reading due jobs", error)
            return []

    def get_next_run_time(self):
        self.flush_removals()  # APScheduler asks this once a pass, after running the pass's due jobs
        try:
            found = self._next_run_time()
        except SQLAlchemyError as error:
            self._failed("reading the next job's time", error)
            return dt.datetime.now(UTC) + dt.timedelta(seconds=RETRY_SECONDS)
        self.outage.answered()
        return found

    def _next_run_time(self) -> dt.datetime | None:
        """The soonest job's time, leaving out fired jobs still in the table (else the loop would spin)."""
        with self.engine.connect() as conn:
            soonest = job_queries.soonest(conn, len(self._fired) + 1, self._mine())
        return utc_timestamp_to_datetime(next((at for job_id, at in soonest if job_id not in self._fired), None))

    def update_job(self, job):
        try:
            super().update_job(job)
        except JobLookupError:
            pass  # removed meanwhile (re-planned away): nothing to update
        except SQLAlchemyError as error:
            self._failed(f"updating job {job.id}", error)

    def remove_job(self, job_id):
        """Remove a job once its firing is written, with every other job of the loop's pass.

        APScheduler removes each one-off job right after handing it to the
        executor, one transaction per job: 1,000 jobs due together would cost
        1,000 commits before the next pass. And the job is the only durable
        trace of a firing until the firing thread has written it: deleted
        before, a stop while the database is away would lose the firing. So
        the job is only left out of what this store returns (it cannot run
        twice), and deleted at the first pass after :meth:`settle`.
        """
        self._fired.add(job_id)

    def settle(self, ids) -> None:
        """The firings of these jobs are written (or handed to re-planning): their jobs may go."""
        self._settled.update(set(ids) & self._fired)

    @property
    def fired(self) -> frozenset[str]:
        """Jobs APScheduler has run whose rows are still in the table (their firing not yet settled or
        their deletion not yet written)."""
        return frozenset(self._fired)

    def flush_removals(self) -> None:
        """Delete the jobs whose firing is settled, in one transaction."""
        if not self._settled:
            return
        try:
            with self.engine.begin() as conn:
                job_queries.remove_jobs(conn, sorted(self._settled))
            self._fired -= self._settled
            self._settled.clear()
        except SQLAlchemyError as error:
            # Kept: still left out of what we return, and deleted on a later pass.
            self._failed(f"removing {len(self._settled)} fired jobs", error)

    def forget(self, partitions: set[int]) -> None:
        """These partitions are another instance's now: their jobs run there, fired ones included (again,
        harmlessly: a firing's deliveries are written once). Called under APScheduler's lock."""
        gone = {i for i in self._fired if job_queries.partition_key(i) % self.share.count in partitions}
        self._fired -= gone
        self._settled -= gone

    def replace_jobs(self, jobs: list[Job]) -> None:
        """Write many jobs in one transaction (APScheduler's add_job commits once per job)."""
        rows = [{"id": job.id, "next_run_time": datetime_to_utc_timestamp(job.next_run_time),
                 "job_state": pickle.dumps(job.__getstate__(), self.pickle_protocol)} for job in jobs]
        with self.engine.begin() as conn:
            job_queries.replace_jobs(conn, rows)
        written = {row["id"] for row in rows}  # written anew: not to be removed
        self._fired -= written
        self._settled -= written

    def remove_jobs(self, ids: list[str]) -> int:
        with self.engine.begin() as conn:
            removed = job_queries.remove_jobs(conn, ids)
        self._fired.difference_update(ids)
        self._settled.difference_update(ids)
        return removed


class ArgsRecordingExecutor(ThreadPoolExecutor):
    """A thread pool that remembers each submitted run's arguments until its outcome event.

    APScheduler's missed-job event carries the job id and run time but not the
    job's arguments (the planned time); the listener recovers them here.
    """

    def __init__(self, max_workers: int):
        super().__init__(max_workers)
        self._args: dict[tuple[str, dt.datetime], tuple] = {}
        self._args_lock = threading.Lock()

    def submit_job(self, job, run_times):
        with self._args_lock:
            for run_time in run_times:
                self._args[(job.id, run_time)] = tuple(job.args)
        super().submit_job(job, run_times)

    def pop_args(self, job_id: str, run_time: dt.datetime) -> tuple | None:
        with self._args_lock:
            return self._args.pop((job_id, run_time), None)


def make_scheduler(store: SafeJobStore, executor: ArgsRecordingExecutor) -> BackgroundScheduler:
    """APScheduler configured deliberately: UTC, coalescing, a real grace.

    APScheduler's own default misfire grace (1 s) would silently drop any firing
    the daemon was down for; each job sets its workflow's grace, and this
    default (1 h) only covers a job that somehow lacks one.
    """
    return BackgroundScheduler(
        timezone=UTC,
        jobstores={"default": store},
        executors={"default": executor},
        job_defaults={"coalesce": True, "max_instances": MAX_INSTANCES, "misfire_grace_time": 3600},
    )


# --- APScheduler's private parts, behind one door ------------------------------------------------
# tests/test_time_offset.py fails loudly if an APScheduler upgrade removes them.

def apscheduler_lock(scheduler: BackgroundScheduler):
    """The lock APScheduler's loop holds while it runs due jobs: held, no job is run meanwhile."""
    return scheduler._jobstores_lock


class SchedulerStopping(Exception):
    """APScheduler is shutting down: its lock is not to be waited for from a job's thread."""


@contextmanager
def apscheduler_lock_from_job(scheduler: BackgroundScheduler):
    """:func:`apscheduler_lock`, for code running in one of APScheduler's executor threads: its shutdown
    holds that lock while it waits for those threads to end, so waiting for it there would never end.
    SchedulerStopping once the scheduler is stopping and the lock is still taken."""
    lock = apscheduler_lock(scheduler)
    while not lock.acquire(timeout=0.05):
        if scheduler.state == STATE_STOPPED:
            raise SchedulerStopping
    try:
        yield
    finally:
        lock.release()


def loop_thread(scheduler: BackgroundScheduler) -> threading.Thread | None:
    """The BackgroundScheduler's loop thread (its ``running`` flag does not tell whether it died)."""
    return getattr(scheduler, "_thread", None)


def date_job(scheduler: BackgroundScheduler, *, job_id: str, func: str, args: tuple, run_at: dt.datetime,
             grace: dt.timedelta, name: str) -> Job:
    """A one-off job for the batch writer, the same as ``scheduler.add_job`` would build.

    Built from its state, the way APScheduler's own jobstore restores a job:
    the constructor inspects the function's signature for every job, which
    was a third of the cost of reconciling. The arguments are checked against
    the function once per arity instead (tests/test_time_offset.py compares
    the two ways).
    """
    _check_arguments(func, len(args))
    trigger = DateTrigger(run_date=run_at, timezone=UTC)
    job = Job.__new__(Job)
    job.__setstate__({
        "version": 1, "id": job_id, "func": func, "trigger": trigger, "executor": "default", "args": tuple(args),
        "kwargs": {}, "name": name, "misfire_grace_time": int(grace.total_seconds()), "coalesce": True,
        "max_instances": MAX_INSTANCES, "next_run_time": trigger.get_next_fire_time(None, run_at),
    })
    job._scheduler, job._jobstore_alias = scheduler, None
    return job


@functools.lru_cache(maxsize=None)
def _check_arguments(func: str, count: int) -> None:
    check_callable_args(ref_to_obj(func), (None,) * count, {})
