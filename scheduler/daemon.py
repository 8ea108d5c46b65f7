"""``apptflow run``: the event consumer, the delivery workers and housekeeping, in threads."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from sqlalchemy.engine import Engine

from db import deliveries, events, instances
from db.connect import connect
from db.errors import describe, unavailable
from engine.retry import RetryPolicy
from scheduler.catalogue import Catalogue
from scheduler.config import Config, seconds
from scheduler.consumer import EventConsumer, Wakeup
from scheduler.leader import Leadership
from scheduler.outage import FIRST_WAIT, LONGEST_WAIT, Outage
from scheduler.planner import Planner
from scheduler.transports import Transports
from scheduler.workers import DeliveryWorker

logger = logging.getLogger(__name__)

# Deliveries a worker claims at once: one statement and one read for several sends, while a
# crash leaves few claims to reclaim.
WORKER_BATCH = 10
# How long a worker other than the polling one sleeps when nothing wakes it (a safety net).
IDLE_WORKER_WAIT = 60.0
# How long a loop waits before trying again when the database did not answer.
UNAVAILABLE_WAIT = 0.5


def utc_now() -> dt.datetime:
    """The one place the daemon asks the clock."""
    return dt.datetime.now(dt.timezone.utc)


def notify_systemd(state: str) -> None:
    """Tell systemd (Type=notify) about our state, when run by it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(address)
            sock.sendall(state.encode())
        except OSError:
            logger.warning("could not notify systemd", exc_info=True)


class WorkSignal:
    """Wakes one idle worker per call, and remembers a call that came while none was waiting.

    One delivery to send should wake one worker, not all of them racing for it;
    a worker that claims a full batch wakes the next, so a burst draws in every
    worker in turn.
    """

    def __init__(self):
        self._condition = threading.Condition()
        self._pending = self._closed = False

    def set(self) -> None:
        with self._condition:
            self._pending = True
            self._condition.notify()

    def wake_all(self) -> None:
        with self._condition:
            self._pending = True
            self._condition.notify_all()

    def close(self) -> None:
        """Wake every worker, now and at every later wait: the daemon is stopping."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def wait(self, timeout: float) -> None:
        with self._condition:
            if not self._pending and not self._closed:
                self._condition.wait(timeout)
            self._pending = False


def retry_policy(config: Config) -> RetryPolicy:
    daemon = config.section("daemon")
    return RetryPolicy(base=daemon["retry_base"], cap=daemon["retry_cap"],
                       attempts=daemon["retry_attempts"])


class Daemon:
    """Everything ``apptflow run`` does; :meth:`stop` finishes in-flight sends and returns."""

    def __init__(self, config: Config, *, engine: Engine | None = None, transports: Transports | None = None,
                 clock: Callable[[], dt.datetime] = utc_now):
        daemon = config.section("daemon")
        self.config = config
        self.engine = engine or connect(config.database_url)
        self.clock = clock
        self.transports = transports or Transports(config)
        self.catalogue = Catalogue()
        self.work_ready = WorkSignal()
        self.outage = Outage()  # every thread reports to it: one line a second while the database is away
        self.planner = Planner(self.engine, self.catalogue, clock=clock, on_deliveries=self.work_ready.set,
                               max_depth=daemon["max_chain_depth"], threads=daemon["job_threads"],
                               outage=self.outage)
        self.consumer = EventConsumer(self.engine, self.catalogue, max_depth=daemon["max_chain_depth"],
                                      after_commit=self.planner.after_batch, on_deliveries=self.work_ready.set)
        self.reconcile_every = seconds(daemon["reconcile_interval"])
        self.leadership = Leadership(self.engine)
        self.event_retention = daemon["event_retention"]
        self.worker = DeliveryWorker(self.engine, self.transports, company=dict(config.section("company")),
                                     policy=retry_policy(config), lease=daemon["lease"],
                                     batch=WORKER_BATCH, clock=clock, outage=self.outage)
        self.poll = seconds(daemon["poll_interval"])
        self.heartbeat = seconds(daemon["heartbeat"])
        self.worker_count = max(1, daemon["workers"])
        self.stopping = threading.Event()
        self.instance_id = uuid.uuid4().hex
        self._threads: list[threading.Thread] = []
        self.wakeup: Wakeup | None = None

    def start(self) -> None:
        """Register this instance and start the threads."""
        with self.engine.begin() as conn:
            instances.register(conn, self.instance_id, socket.gethostname(), os.getpid(), self.clock())
        self._spawn("consumer", self._lead)
        self._spawn("housekeeping", self._housekeep)
        for n in range(self.worker_count):
            self._spawn(f"worker-{n}", functools.partial(self._work, polls=n == 0))
        logger.info("apptflow running: %d workers, polling every %gs", self.worker_count, self.poll)
        notify_systemd("READY=1")

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=self._guarded(name, target), name=f"apptflow-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _guarded(self, name: str, step: Callable[[], None]) -> Callable[[], None]:
        """Run *step* until stopping; an exception is logged and the loop goes on after a pause.

        An unavailable database is not a bug: it is reported to the daemon's Outage (one
        line a second for all threads, no traceback) and waited out.
        """
        def loop():
            while not self.stopping.is_set():
                try:
                    step()
                except Exception as error:  # noqa: BLE001 - the loop must survive bugs too
                    if unavailable(error):
                        self.outage.failed(name, error)
                        self.stopping.wait(UNAVAILABLE_WAIT)
                    else:
                        logger.exception("%s loop failed; retrying", name)
                        self.stopping.wait(1.0)
        return loop

    def _lead(self) -> None:
        """Lead when no other instance does: consume events and run the time-offset jobs until we stop.

        Losing the lead (its lock's session is gone) pauses APScheduler at once; leading
        again resumes it, with a whole reconciliation, without building it anew.
        """
        if not self.leadership.acquire():
            self.stopping.wait(self.heartbeat)
            return
        self.outage.answered()
        self.catalogue.invalidate()  # edits made while another instance led are not in our copy
        self.planner.start()
        try:
            self._consume()
        finally:
            if self.stopping.is_set():
                self.planner.stop()
            else:
                self.planner.pause()
            self.leadership.release()

    def _consume(self) -> None:
        """Handle events as they come; reconcile every time-offset job at first and now and then.

        While the database is away the loop waits for it and goes on where it was, still
        leading as long as the leader lock's session lives; returns when it does not.
        """
        wakeup = self.wakeup = Wakeup(self.engine, self.poll, self.stopping)
        next_reconcile = next_confirm = 0.0
        horizon: dt.timedelta | None = None  # the first reconciliation, as we start leading, is whole
        wait = FIRST_WAIT
        try:
            while not self.stopping.is_set():
                try:
                    if time.monotonic() >= next_confirm:
                        if not self.leadership.confirm():
                            return
                        self.planner.ensure_running()
                        next_confirm = time.monotonic() + self.heartbeat
                    if self.planner.behind:
                        self.planner.retry_failed(self.clock())
                    while self.consumer.process_batch(self.clock()):  # a fresh now for every batch
                        pass
                    self.outage.answered()
                    if time.monotonic() >= next_reconcile:
                        now = self.clock()
                        self.planner.reconcile(now, until=now + horizon if horizon else None)
                        next_reconcile = time.monotonic() + self.reconcile_every
                        # Later ones check the firings due within two intervals: each firing is checked
                        # at least once more before it is due, at a cost that does not grow with the tables.
                        horizon = 2 * dt.timedelta(seconds=self.reconcile_every)
                except Exception as error:
                    if not unavailable(error):
                        raise
                    self.outage.failed("consumer", error)
                    if not self.leadership.confirm():
                        return
                    self.stopping.wait(wait)
                    wait = min(2 * wait, LONGEST_WAIT)
                    continue
                wait = FIRST_WAIT
                wakeup.wait()
        finally:
            wakeup.close()

    def _work(self, polls: bool) -> None:
        """Deliver until stopping. One worker polls; the others sleep until new work wakes them.

        New deliveries of this process wake a worker at once; those of another instance and
        retries coming due are found by the polling one, which draws the others in.
        """
        while not self.stopping.is_set():
            done = self.worker.work(self.clock())
            if len(done) >= self.worker.batch:
                self.work_ready.set()  # there may be more: draw in another worker
            elif not done:
                self.work_ready.wait(self.poll if polls else max(self.poll, IDLE_WORKER_WAIT))

    def _housekeep(self) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            instances.heartbeat(conn, self.instance_id, now)
            resent, held = deliveries.reclaim_expired(conn, now)
            events.purge_processed(conn, now - self.event_retention)
        if resent or held:
            logger.warning("reclaimed deliveries whose lease ended unrecorded (a worker or instance stopped "
                           "mid-send, or the database was away past the lease): %d to send again, %d held "
                           "as unknown", resent, held)
            self.work_ready.wake_all()
        self.stopping.wait(self.heartbeat)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop claiming work, let in-flight sends finish, and record the stop."""
        notify_systemd("STOPPING=1")
        self.stopping.set()
        self.work_ready.close()
        for thread in self._threads:
            thread.join(timeout)
        self.planner.stop()  # paused, if this instance had stopped leading
        try:
            with self.engine.begin() as conn:
                instances.stopped(conn, self.instance_id, self.clock())
        except Exception as error:  # noqa: BLE001 - the database may be the reason we stop
            logger.warning("could not record the stop: %s", describe(error))
        self.transports.close()
        logger.info("apptflow stopped")

    def run_until(self, stop: threading.Event) -> None:
        """Start, wait for *stop*, stop."""
        self.start()
        stop.wait()
        self.stop()
