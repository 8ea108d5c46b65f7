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

from channels import registry as channel_registry
from db import deliveries, events, instances
from db.errors import describe, unavailable
from engine.retry import RetryPolicy
from scheduler import logs
from scheduler.catalogue import Catalogue
from scheduler.config import Config, seconds, settings
from scheduler.consumer import EventConsumer, Wakeup
from scheduler.conversation import Conversation
from scheduler.inbound import InboundServer
from scheduler.inbound import serve as serve_inbound
from scheduler.jobstore import loop_thread
from scheduler.leader import Disagreement, Leadership
from scheduler.metrics import Metrics
from scheduler.outage import FIRST_WAIT, LONGEST_WAIT, Outage
from scheduler.planner import Planner
from scheduler.systemd import Liveness, Watchdog, watchdog_interval
from scheduler.systemd import notify as notify_systemd
from scheduler.telegram_replies import TelegramReplies, start_polling
from scheduler.transports import Transports
from scheduler.workers import DeliveryWorker, Handoff

logger = logging.getLogger(__name__)

# Deliveries a worker claims at once: one statement and one read for several sends, while a
# crash leaves few claims to reclaim.
WORKER_BATCH = 10
# How long a worker other than the polling one sleeps when nothing wakes it (a safety net).
IDLE_WORKER_WAIT = 60.0
# How long a loop waits before trying again when the database did not answer.
UNAVAILABLE_WAIT = 0.5
# What the watchdog allows a whole reconciliation (a million appointments take minutes).
RECONCILE_PASS = 600.0


def utc_now() -> dt.datetime:
    """The one place the daemon asks the clock."""
    return dt.datetime.now(dt.timezone.utc)


class WorkSignal:
    """Wakes one idle worker per call, and remembers a call that came while none was waiting.

    One delivery to send should wake one worker, not all of them racing for it;
    a worker that claims a full batch wakes the next, so a burst draws in every
    worker in turn.
    """

    def __init__(self):
        self._condition = threading.Condition()
        self._pending = self._closed = False
        self.round = 0  # counts wake_all calls: a worker busy during one still sees it (see wait)

    def set(self) -> None:
        with self._condition:
            self._pending = True
            self._condition.notify()

    def wake_all(self) -> None:
        with self._condition:
            self._pending = True
            self.round += 1
            self._condition.notify_all()

    def close(self) -> None:
        """Wake every worker, now and at every later wait: the daemon is stopping."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def wait(self, timeout: float, since: int | None = None) -> None:
        """Wait for a wake-up, or *timeout*; not at all if wake_all was called after round *since*."""
        with self._condition:
            if not self._pending and not self._closed and (since is None or since == self.round):
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
        self.engine = engine or config.connect(daemon=True)
        self.clock = clock
        self.transports = transports or Transports(config)
        self.catalogue = Catalogue()
        self.work_ready = WorkSignal()
        self.outage = Outage()  # every thread reports to it: one line a second while the database is away
        self.metrics = Metrics()
        self.reconcile_every = seconds(daemon["reconcile_interval"])
        self.instance_id = uuid.uuid4().hex
        # The partitions this instance leads (docs/scale-out.md), read by the consumer, planner and jobstore.
        self.leadership = Leadership(self.engine, self.metrics, instance_id=self.instance_id,
                                     partitions=daemon["partitions"])
        self.worker_count = max(1, daemon["workers"])
        # What the consumer and the firings write due at once, claimed, for the workers of this process.
        self.handoff = Handoff(daemon["lease"], WORKER_BATCH, self.worker_count)
        self.planner = Planner(self.engine, self.catalogue, clock=clock, on_deliveries=self.work_ready.set,
                               max_depth=daemon["max_chain_depth"], threads=daemon["job_threads"],
                               outage=self.outage, metrics=self.metrics,
                               company_zone=config.get("company", "timezone"),
                               horizon=2 * dt.timedelta(seconds=self.reconcile_every),
                               send_window=config.get("workflows", "send_window"), share=self.leadership,
                               handoff=self.handoff)
        self.consumer = EventConsumer(self.engine, self.catalogue, max_depth=daemon["max_chain_depth"],
                                      after_commit=self.planner.after_batch, on_deliveries=self.work_ready.set,
                                      metrics=self.metrics, send_window=config.get("workflows", "send_window"),
                                      share=self.leadership, follows_customers=self.planner.recurring.follows_customers,
                                      handoff=self.handoff)
        self._gained: set[int] = set()  # partitions taken since the consumer last reconciled (it does them whole)
        self.event_retention = daemon["event_retention"]
        self._capture_seen, self._capture_reported = 0, False  # the capture_errors already logged
        self.worker = DeliveryWorker(self.engine, self.transports, company=dict(config.section("company")),
                                     policy=retry_policy(config), lease=daemon["lease"],
                                     batch=WORKER_BATCH, clock=clock, outage=self.outage, metrics=self.metrics,
                                     send_window=config.get("workflows", "send_window"), handoff=self.handoff)
        self.poll = seconds(daemon["poll_interval"])
        self.heartbeat = seconds(daemon["heartbeat"])
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._workers: dict[int, threading.Thread] = {}
        self._retired: list[Transports] = []  # replaced by a reload; closed at stop (a send may still use one)
        self.wakeup: Wakeup | None = None
        self.liveness = Liveness()  # what the systemd watchdog checks
        self.watchdog: Watchdog | None = None
        # What comes back (docs/replies.md): served by every instance, consumed by the leader.
        self.conversation = Conversation(self.engine, reply_window=config.get("inbound", "reply_window"),
                                         metrics=self.metrics, poke=lambda: self.wakeup and self.wakeup.poke())
        self.inbound: InboundServer | None = None
        self.telegram_replies: TelegramReplies | None = None

    def start(self) -> None:
        """Register this instance (refused if instances alive run with other partitions), serve the metrics
        (if configured) and start the threads."""
        with self.engine.begin() as conn:
            instances.register(conn, self.instance_id, socket.gethostname(), os.getpid(), self.clock(),
                               self.leadership.count)
        try:
            self.leadership.join(self.clock())
        except Disagreement:
            self.leadership.release(lambda _: None)
            with self.engine.begin() as conn:
                instances.stopped(conn, self.instance_id, self.clock())
            raise
        if self.config.get("metrics", "listen"):
            self.metrics.serve(self.config.get("metrics", "listen"), self.engine)
        self.inbound = serve_inbound(self.config, self.conversation, self.clock)
        self.telegram_replies = start_polling(self.config, self.conversation, stopping=self.stopping,
                                              leading=lambda: 0 in self.leadership.held, clock=self.clock,
                                              pause=self.poll)
        self._spawn("consumer", self._lead)
        self._spawn("housekeeping", self._housekeep)
        self._spawn_workers()
        interval = watchdog_interval()
        if interval is not None:
            self.liveness.slack = 2 * interval  # the watchdog's timeout
            self.watchdog = Watchdog(interval, self.problems, self.stopping)
            self.watchdog.start()
        logger.info("apptflow running: %d workers, polling every %gs%s", self.worker_count, self.poll,
                    f", feeding systemd's watchdog every {interval:g}s" if interval else "")
        notify_systemd("READY=1")

    def _spawn(self, name: str, target: Callable[[], None], alive: Callable[[], bool] = lambda: True
               ) -> threading.Thread:
        thread = threading.Thread(target=self._guarded(name, target, alive), name=f"apptflow-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def _spawn_workers(self) -> None:
        """Start the workers the configuration wants and that are not running (see reload)."""
        for n in range(self.worker_count):
            if n not in self._workers or not self._workers[n].is_alive():
                self._workers[n] = self._spawn(f"worker-{n}", functools.partial(self._work, n),
                                               alive=functools.partial(self._wanted, n))

    def _wanted(self, n: int) -> bool:
        return n < self.worker_count

    def problems(self) -> list[str]:
        """What keeps the daemon from feeding the watchdog: loops without progress, APScheduler's thread dead."""
        found = self.liveness.stalled()
        thread = loop_thread(self.planner.scheduler)
        if self.leadership.leading and self.planner.scheduler.running and thread is not None \
                and not thread.is_alive():
            found.append("APScheduler's loop thread has died")
        return found

    def _guarded(self, name: str, step: Callable[[], None],
                 alive: Callable[[], bool] = lambda: True) -> Callable[[], None]:
        """Run *step* until stopping; an exception is logged and the loop goes on after a pause.

        An unavailable database is not a bug: it is reported to the daemon's Outage (one
        line a second for all threads, no traceback) and waited out.
        """
        def loop():
            while not self.stopping.is_set() and alive():
                try:
                    step()
                except Exception as error:  # noqa: BLE001 - the loop must survive bugs too
                    if unavailable(error):
                        self.outage.failed(name, error)
                        self.stopping.wait(UNAVAILABLE_WAIT)
                    else:
                        logger.exception("%s loop failed; retrying", name)
                        self.stopping.wait(1.0)
            self.liveness.forget(name)
        return loop

    def _lead(self) -> None:
        """Lead this instance's share of the partitions: consume their events and run their jobs until we stop.

        Leading nothing pauses APScheduler; leading again resumes it, with a whole reconciliation of the
        partitions taken, without building it anew.
        """
        self.liveness.beat("consumer", self.heartbeat)
        complete = self.leadership.step(self.clock(), self._gain, self._lose)
        if not self.leadership.leading:
            self.stopping.wait(self.heartbeat if complete else self.heartbeat / 4)
            return
        self.outage.answered()
        self.planner.start()
        try:
            self._consume(complete)
        finally:
            if self.stopping.is_set():
                self.planner.stop()
            else:
                self.planner.pause()
            self.leadership.release(self._lose, leave=self.stopping.is_set())

    def _gain(self, partitions: set[int]) -> None:
        self.catalogue.invalidate()  # edits made while another instance led are not in our copy
        self._gained |= partitions
        self.planner.gain(partitions)

    def _lose(self, partitions: set[int]) -> None:
        self._gained -= partitions
        self.planner.lose(partitions)

    def _consume(self, complete: bool = True) -> None:
        """Handle events as they come; reconcile every time-offset job at first and now and then.

        Every heartbeat (every quarter of one while a partition of its share is still another's) the
        instance confirms its locks and takes or gives back partitions; a partition taken is reconciled
        whole at once. While the database is away the loop waits for it and goes on where it was, still
        leading as long as the locks' session lives; returns when it leads nothing.
        """
        wakeup = self.wakeup = Wakeup(self.engine, self.poll)
        next_reconcile = 0.0
        next_confirm = time.monotonic() + (self.heartbeat if complete else self.heartbeat / 4)
        horizon: dt.timedelta | None = None  # the first reconciliation, as we start leading, is whole
        wait = FIRST_WAIT
        try:
            while not self.stopping.is_set():
                # comes round after one poll, a pass over the waiting events and planning
                self.liveness.beat("consumer", self.poll + self.heartbeat)
                try:
                    if time.monotonic() >= next_confirm:
                        complete = self.leadership.step(self.clock(), self._gain, self._lose)
                        if not self.leadership.leading:
                            return
                        self.planner.ensure_running()
                        next_confirm = time.monotonic() + (self.heartbeat if complete else self.heartbeat / 4)
                    if self.planner.behind:
                        self.planner.retry_failed(self.clock())
                    drained = self._drain_until(next_confirm)
                    self.outage.answered()
                    if time.monotonic() >= next_reconcile:
                        self.liveness.beat("consumer", RECONCILE_PASS)
                        now = self.clock()
                        if horizon is None:  # whole: the partitions just taken too
                            self._gained.clear()
                        self.planner.reconcile(now, until=now + horizon if horizon else None)
                        next_reconcile = time.monotonic() + self.reconcile_every
                        # Later ones check the firings due within two intervals: each firing is checked
                        # at least once more before it is due, at a cost that does not grow with the tables.
                        horizon = 2 * dt.timedelta(seconds=self.reconcile_every)
                    if self._gained:
                        self.liveness.beat("consumer", RECONCILE_PASS)
                        gained, self._gained = self._gained, set()
                        self.planner.reconcile(self.clock(), partitions=gained)
                except Exception as error:
                    if not unavailable(error):
                        raise
                    self.outage.failed("consumer", error)
                    if not self.leadership.confirm(self._lose) or not self.leadership.leading:
                        return
                    self.stopping.wait(wait)
                    wait = min(2 * wait, LONGEST_WAIT)
                    continue
                wait = FIRST_WAIT
                if drained:
                    wakeup.wait(at_most=next_confirm - time.monotonic())
        finally:
            wakeup.close()

    def _drain_until(self, deadline: float) -> bool:
        """Handle the waiting events, a batch at a time with a fresh now each, until none is left (True) or
        *deadline* (monotonic) comes, when the partitions are stepped (False: more may wait)."""
        while self.consumer.process_batch(self.clock()):
            self.liveness.beat("consumer", self.poll + self.heartbeat)  # a burst is progress
            if time.monotonic() >= deadline:
                return False
        return True

    def _work(self, n: int) -> None:
        """Deliver until stopping (or until a reload wants fewer workers). Worker 0 polls; the
        others sleep until new work wakes them.

        New deliveries of this process wake a worker at once; those of another instance and
        retries coming due are found by the polling one, which draws the others in.
        """
        name = f"worker-{n}"
        while not self.stopping.is_set() and self._wanted(n):
            # a batch ends within its lease: a send past half of it is given back unattempted
            self.liveness.beat(name, self.worker.lease.total_seconds())
            round_ = self.work_ready.round
            done = self.worker.work(self.clock())
            if len(done) >= self.worker.batch:
                self.work_ready.set()  # there may be more: draw in another worker
            elif not done:
                wait = self._until_due(self.poll) if n == 0 else max(self.poll, IDLE_WORKER_WAIT)
                self.liveness.beat(name, wait)
                self.work_ready.wait(wait, since=round_)

    def _until_due(self, poll: float) -> float:
        """How long the polling worker waits: a poll, or less when a pending delivery comes due sooner (one
        waiting for its send window, a retry), so that it goes at its second, not up to a poll late."""
        with self.engine.connect() as conn:
            due = deliveries.next_due_at(conn)
        left = (due - self.clock()).total_seconds() if due is not None else poll
        return min(poll, left) if left > 0 else poll  # due already: claimed by someone else, or locked

    def _housekeep(self) -> None:
        self.liveness.beat("housekeeping", self.heartbeat)
        now = self.clock()
        with self.engine.begin() as conn:
            instances.heartbeat(conn, self.instance_id, now)
            resent, held = deliveries.reclaim_expired(conn, now)
            events.purge_processed(conn, now - self.event_retention)
            lost, self._capture_seen, error = events.capture_failures(conn, self._capture_seen)
            if os.environ.get("NOTIFY_SOCKET"):
                waiting, due = events.count_waiting(conn), deliveries.count_due(conn, now)
                notify_systemd(f"STATUS={self._role()}"
                               f"; {waiting} change events waiting, {due} deliveries due"
                               f"; {self.worker_count} workers")
        if lost:  # at the first pass, every one ever recorded; then the new ones
            logger.log(logging.ERROR if self._capture_reported else logging.WARNING,
                       "%d change(s) to the booking tables could not be captured%s, the last: %s; their immediate "
                       "workflows did not run (see the capture_errors table and `apptflow db check`)",
                       lost, "" if self._capture_reported else " (recorded before this start)", error)
        self._capture_reported = True
        if resent or held:
            logger.warning("reclaimed deliveries whose lease ended unrecorded (a worker or instance stopped "
                           "mid-send, or the database was away past the lease): %d to send again, %d held "
                           "as unknown", resent, held)
            self.work_ready.wake_all()
        self.stopping.wait(self.heartbeat)

    def _role(self) -> str:
        held = self.leadership.held
        if not held:
            return "standby (other instances lead)"
        if self.leadership.count == 1:
            return "leader"
        return f"leader of partitions {', '.join(str(p) for p in sorted(held))} of {self.leadership.count}"

    def reload(self, config: Config) -> list[str]:
        """Take a new configuration: apply what can change live, report what needs a restart.

        Returns the log lines said (one per change). Live: log level, poll interval, workers,
        retry policy, chain depth, event retention, channel credentials and endpoints (and
        dry run), company keywords.
        """
        changed = self.config.changes(config)
        if not changed:
            logger.info("configuration reloaded: nothing changed")
            return []
        said, known = [], settings()
        for section, key in changed:
            before, after = self.config.shown(section, key), config.shown(section, key)
            if known[section][key].live:
                said.append(f"[{section}] {key}: {before} → {after}")
            else:
                said.append(f"[{section}] {key}: {before} → {after} needs a restart; the running value is kept")
        self._apply({section for section, key in changed if known[section][key].live},
                    {key for section, key in changed if section == "daemon"}, config)
        self.config = self.config.merged_live(config)
        for line in said:
            (logger.warning if "needs a restart" in line else logger.info)("configuration reloaded: %s", line)
        return said

    def _apply(self, sections: set[str], daemon_keys: set[str], config: Config) -> None:
        daemon = config.section("daemon")
        if "log_level" in daemon_keys:
            logs.set_level(daemon["log_level"])
        if "poll_interval" in daemon_keys:
            self.poll = seconds(daemon["poll_interval"])
            if self.wakeup is not None:
                self.wakeup.interval = self.poll
                self.wakeup.poke()  # the wait under way ends now, not an old interval later
        if daemon_keys & {"retry_base", "retry_cap", "retry_attempts"}:
            self.worker.policy = retry_policy(config)
        if "max_chain_depth" in daemon_keys:
            self.consumer.max_depth = self.planner.max_depth = daemon["max_chain_depth"]
        if "event_retention" in daemon_keys:
            self.event_retention = daemon["event_retention"]
        if sections & set(channel_registry.sections()) or daemon_keys & {
                "dry_run", "attachment_dir", "attachments_allow_private_addresses"}:
            self._retired.append(self.transports)
            self.transports = self.worker.transports = Transports(config)
        if "company" in sections:
            self.worker.company = dict(config.section("company"))
        if "workflows" in sections:
            self.consumer.send_window = self.planner.send_window = self.worker.send_window = \
                config.get("workflows", "send_window")
        if "workers" in daemon_keys:
            self.worker_count = daemon["workers"]
            self.handoff.capacity = WORKER_BATCH * max(1, self.worker_count)
            self._spawn_workers()  # more: started now; fewer: the extra ones end after their batch
            self.work_ready.wake_all()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop claiming work, let in-flight sends finish, and record the stop."""
        notify_systemd("STOPPING=1")
        self.stopping.set()
        self.handoff.capacity = 0  # what is written from now on stays pending: the workers are stopping
        self.work_ready.close()
        if self.wakeup is not None:
            self.wakeup.poke()
        if self.inbound is not None:
            self.inbound.stop()
        for thread in self._threads:
            thread.join(timeout)
        if self.telegram_replies is not None:
            self.telegram_replies.stop()
        if self.watchdog is not None:
            self.watchdog.join(timeout)
        self.planner.stop()  # paused, if this instance had stopped leading
        try:  # handed over, not taken by a worker before they stopped: pending again, for the next instance
            self.worker.give_back(self.handoff.take_all(), self.clock())
        except Exception as error:  # noqa: BLE001 - the database may be the reason we stop
            logger.warning("could not give back the deliveries handed to the workers: %s", describe(error))
        try:
            self.leadership.release(self._lose)  # its own lock too: no longer counted alive
        except Exception as error:  # noqa: BLE001 - the database may be the reason we stop
            logger.warning("could not give back the partitions: %s", describe(error))
        try:
            with self.engine.begin() as conn:
                instances.stopped(conn, self.instance_id, self.clock())
        except Exception as error:  # noqa: BLE001 - the database may be the reason we stop
            logger.warning("could not record the stop: %s", describe(error))
        for transports in [*self._retired, self.transports]:
            transports.close()
        self.metrics.close()
        logger.info("apptflow stopped")
