"""The event consumer: change events in, outbox rows out, in one transaction per batch."""

from __future__ import annotations

import dataclasses
from collections import Counter
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.engine import Connection, Engine

from db import booking as bookings
from db import deliveries, events
from db.codes import WORKFLOW_TABLES, CapturedTable, Operation
from db.errors import describe, unavailable
from db.options import TIMEOUTS_OPTION
from db.records import Booking, ChangeEvent, Delivery
from db.servers import server_for
from engine.matching import match_event
from engine.outbox import MAX_CHAIN_DEPTH, plan_deliveries
from engine.windows import Window
from scheduler.leader import Share
from scheduler.metrics import Metrics
from scheduler.workers import Handoff, Loaded

logger = logging.getLogger(__name__)


class EventConsumer:
    """Claims unprocessed change events, hands each to the engine, writes its deliveries.

    A batch is handled in one pass: its bookings read together, its deliveries
    written in one statement, its events marked in one. If anything in the
    pass fails, the batch is handled again event by event, each in a savepoint
    of its own, so that one bad event is marked with its error and the others
    go through. An unavailable database is not a bad event: the whole
    transaction fails, nothing is marked, and the batch is claimed again later.
    """

    def __init__(self, engine: Engine, catalogue, *, batch_size: int = 100, max_depth: int = MAX_CHAIN_DEPTH,
                 after_commit: Callable[[list[ChangeEvent], dt.datetime], None] | None = None,
                 on_deliveries: Callable[[], None] = lambda: None, metrics: Metrics | None = None,
                 send_window: Window | None = None, share: Share | None = None,
                 follows_customers: Callable[[], bool] = lambda: False, handoff: Handoff | None = None):
        self.engine = engine
        # Where the deliveries due at once go, claimed in the transaction that writes them, with the
        # workflows and bookings just read: to a worker of this process, without its claim and reads.
        self.handoff = handoff
        # The partitions whose events this consumer claims (docs/scale-out.md).
        self.share = share or Share()
        # Whether the planning of a customer's own jobs (birthday, recall) follows their appointments'
        # changes: then an appointment's change is copied to its customer's partition.
        self.follows_customers = follows_customers
        # The highest event id checked for another partition's workflow edit (see _edited_elsewhere).
        self._seen: int | None = None
        self.send_window = send_window  # [workflows] send_window: quiet hours where an action has none
        self.metrics = metrics or Metrics()
        self.catalogue = catalogue
        self.batch_size = batch_size
        self.max_depth = max_depth
        # Called with each batch once committed (time-offset planning, which writes
        # APScheduler's jobstore in transactions of its own).
        self.after_commit = after_commit
        # Called as soon as a batch that wrote deliveries commits: the workers need not wait for planning.
        self.on_deliveries = on_deliveries

    def process_batch(self, now: dt.datetime) -> int:
        """Handle one batch of events; return how many were handled."""
        share = self.share
        count, held = share.count, share.held
        if not held:
            return 0
        with self.engine.begin() as conn:
            batch = events.claim_events(conn, self.batch_size, count, held)
            if any(e.table_name in WORKFLOW_TABLES for e in batch) or self._edited_elsewhere(conn, batch):
                self.catalogue.invalidate()
            written, handed = self._handle_batch(conn, batch, now) if batch else (0, None)
            copies = self._copies(batch) if count > 1 else []
            if copies:
                events.copy_events(conn, copies, now)
                if server_for(conn).notify:  # the other partitions' leaders wake at once
                    server_for(conn).notify_consumer(conn, CapturedTable.WORKFLOWS)
        if self.handoff is not None:
            claims, loaded = handed or ([], None)
            self.handoff.committed(claims, loaded, now, written, self.on_deliveries)
        elif written:
            self.on_deliveries()
        for partition, consumed in Counter(event_partition(e, count) for e in batch).items():
            self.metrics.consumed(consumed, partition)
        if batch and self.after_commit is not None:
            self.after_commit(batch, now)
        return len(batch)

    def _edited_elsewhere(self, conn: Connection, batch: list[ChangeEvent]) -> bool:
        """Whether a workflow changed, in another partition's event, before the last of this batch: its copy
        comes later, and this batch must not be matched against the workflows as they were."""
        if self.share.count == 1 or not batch:
            return False
        last = max(e.id for e in batch)
        seen = self._seen if self._seen is not None else min(e.id for e in batch) - 1
        self._seen = max(seen, last)
        return last > seen and events.workflows_changed(conn, seen, last)

    def _copies(self, batch: list[ChangeEvent]) -> list[tuple[ChangeEvent, int]]:
        """The copies of a batch's events other partitions plan from (docs/scale-out.md): a workflow's edit
        and a customer's change to every other partition, an appointment's change to its customer's."""
        count, copies = self.share.count, []
        customers = None
        for event in batch:
            if event.copy or event.received:
                continue
            own = event_partition(event, count)
            if event.table_name in WORKFLOW_TABLES or (event.table_name == CapturedTable.CUSTOMERS
                                                       and event.op == Operation.UPDATE):
                copies += [(event, p) for p in range(count) if p != own]
            elif event.table_name == CapturedTable.APPOINTMENTS:
                if customers is None:
                    customers = self.follows_customers()
                if customers:
                    ids = {int(v["customer_id"]) for v in (event.old, event.new) if v and v.get("customer_id")}
                    copies += [(event, i) for i in ids if i % count != own]
        return copies

    def drain(self, now: dt.datetime) -> int:
        """Handle every waiting event; return how many."""
        total = 0
        while (count := self.process_batch(now)):
            total += count
        return total

    def _handle_batch(self, conn: Connection, batch: list[ChangeEvent],
                      now: dt.datetime) -> tuple[int, tuple[list[Delivery], Loaded] | None]:
        """How many deliveries the batch wrote, and those of them claimed to hand over (if any)."""
        try:
            with conn.begin_nested():
                written, rows, loaded = self._handle_together(conn, batch, now)
            events.mark_processed_many(conn, [e.id for e in batch], now)
        except Exception as error:  # noqa: BLE001 - find the bad event, one at a time
            if unavailable(error):
                raise
            logger.info("a batch of %d events failed together; handling them one by one", len(batch))
            return sum(self._handle_isolated(conn, event, now) for event in batch), None
        # claimed once nothing of the batch can fail any more: a claim is only ever made to be handed over
        claims = self.handoff.claim(conn, rows, now) if self.handoff is not None else []
        return written, (claims, loaded) if claims else None

    def _handle_together(self, conn: Connection, batch: list[ChangeEvent],
                         now: dt.datetime) -> tuple[int, list[dict], Loaded]:
        """How many deliveries the batch wrote, their rows, and what they refer to, as read here."""
        for event in batch:
            self._on_workflow_deleted(conn, event, now)
        found = bookings.bookings_by_id(conn, {e.subject_id for e in batch if e.op != Operation.DELETE
                                               and e.subject_table == CapturedTable.APPOINTMENTS and not e.copy})
        people: dict[int, Booking] = {}
        workflows = self.catalogue.workflows(conn)
        rows = []
        for event in batch:
            if event.table_name not in WORKFLOW_TABLES and event.op != Operation.DELETE and not event.copy:
                if event.subject_table == CapturedTable.APPOINTMENTS:
                    booking = found.get(event.subject_id)
                elif (booking := bookings.load_customer_booking(conn, event.subject_id)) is not None:
                    people[event.subject_id] = booking
                rows += self._plan(conn, event, workflows, booking, now)
        written = self._write(conn, rows, batch[0].id if len(batch) == 1 else None)
        return written, rows, Loaded(workflows={w.id: w for w in workflows}, bookings=found, customers=people)

    def _handle_isolated(self, conn: Connection, event: ChangeEvent, now: dt.datetime) -> int:
        try:
            with conn.begin_nested():
                written = self.handle(conn, event, now)
            events.mark_processed(conn, event.id, now)
            return written
        except Exception as error:  # noqa: BLE001 - one bad event must not stop the queue
            if unavailable(error):
                raise
            logger.exception("event %s (%s %s %s) could not be handled", event.id, event.op,
                             event.table_name, event.row_id, extra={"event": event.id})
            events.mark_processed(conn, event.id, now, error=f"{type(error).__name__}: {error}")
            return 0

    def handle(self, conn: Connection, event: ChangeEvent, now: dt.datetime) -> int:
        """Everything one event causes, inside the caller's transaction; return how many deliveries it wrote."""
        self._on_workflow_deleted(conn, event, now)
        if event.table_name in WORKFLOW_TABLES or event.op == Operation.DELETE or event.copy:
            return 0
        if event.subject_table == CapturedTable.APPOINTMENTS:
            booking = bookings.load_booking(conn, event.subject_id)
        else:
            booking = bookings.load_customer_booking(conn, event.subject_id)
        return self._write(conn, self._plan(conn, event, self.catalogue.workflows(conn), booking, now), event.id)

    @staticmethod
    def _on_workflow_deleted(conn: Connection, event: ChangeEvent, now: dt.datetime) -> None:
        if event.table_name == CapturedTable.WORKFLOWS and event.op == Operation.DELETE and not event.copy:
            skipped = deliveries.skip_pending_of_workflow(conn, event.row_id, now, "workflow deleted")
            logger.info("workflow %s deleted: %d pending deliveries skipped", event.row_id, skipped,
                        extra={"workflow": event.row_id})

    def _plan(self, conn: Connection, event: ChangeEvent, workflows, booking, now: dt.datetime) -> list[dict]:
        matches = match_event(event, workflows, booking)
        reschedule = next((m.context for m in matches if "old_staff_id" in m.context), None)
        if reschedule is not None:  # what the appointment had before, by name, for the old_* keywords
            before = bookings.names_before(conn, reschedule)
            matches = [dataclasses.replace(m, context={**m.context, **before}) if "old_staff_id" in m.context
                       else m for m in matches]
        for match in matches:
            logger.info("event %s: workflow %s (%s) matched %s %s", event.id, match.workflow.id,
                        match.workflow.name, event.table_name, event.row_id,
                        extra={"workflow": match.workflow.id, "event": event.id})
        return [row for m in matches
                for row in plan_deliveries(m, now, max_depth=self.max_depth, booking=booking,
                                           send_window=self.send_window)]

    @staticmethod
    def _write(conn: Connection, rows: list[dict], event_id: int | None) -> int:
        written = deliveries.insert_deliveries(conn, rows)
        if written != len(rows):
            where = f"event {event_id}" if event_id is not None else "a batch of events"
            logger.info("%s: %d deliveries existed already (replay)", where, len(rows) - written)
        return written


def event_partition(event: ChangeEvent, count: int) -> int:
    """The partition an event is in (as db.events.PARTITION_KEY reads it in SQL)."""
    return (event.partition_key if event.partition_key is not None else event.row_id) % count


# How soon a poke (a stop, a reload) ends a wait for notifications.
POKE_SLICE = 0.25


class Wakeup:
    """Wait for the next poll, woken early by the server's notifications where it sends them (PostgreSQL).

    There a dedicated connection LISTENs on the triggers' channel; if
    it drops, waiting falls back to the poll interval and the connection is
    re-established on the next wait, so a lost notification costs at most
    one interval.
    """

    def __init__(self, engine: Engine, interval: float):
        self.interval = interval
        self._server = server_for(engine)
        self._url = engine.url if self._server.notify else None
        self._timeouts = engine.get_execution_options().get(TIMEOUTS_OPTION)  # the listener's keepalives
        self._listener = None
        self._failed_before = False  # said once until LISTEN is back, not at every poll of an outage
        self.listening = threading.Event()  # set once LISTEN is in place (PostgreSQL)
        self._poked = threading.Event()

    def poke(self) -> None:
        """End a polling wait now (the daemon stops, or its interval changed)."""
        self._poked.set()

    def wait(self, at_most: float | None = None) -> None:
        """Until a notification, a poke, or the poll interval (or *at_most* seconds, if sooner)."""
        interval = self.interval if at_most is None else max(0.0, min(self.interval, at_most))
        if self._url is None or not self._listening():
            self._poked.wait(interval)
            self._poked.clear()
            return
        try:
            self._listen_for(interval)
        except Exception as error:  # noqa: BLE001 - the database went away: poll until it is back
            logger.warning("lost the LISTEN connection (%s); polling until it is back", describe(error))
            self.close()
            self._poked.wait(interval)
            self._poked.clear()

    def _listen_for(self, seconds: float) -> None:
        """Until a notification, a poke or *seconds*. psycopg's wait for notifications cannot be
        interrupted from another thread, so it waits in slices and a poke ends the wait at the next."""
        deadline = time.monotonic() + seconds
        while not self._poked.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if any(True for _ in self._listener.notifies(timeout=min(remaining, POKE_SLICE), stop_after=1)):
                break
        self._poked.clear()

    def _listening(self) -> bool:
        if self._listener is not None:
            return True
        import psycopg

        try:
            self._listener = self._server.listen(self._url, self._timeouts)
            self.listening.set()
            self._failed_before = False
            return True
        except psycopg.Error as error:
            if not self._failed_before:
                logger.warning("cannot LISTEN for change notifications (%s); polling", describe(error))
            self._failed_before = True
            self.close()
            return False

    def close(self) -> None:
        self.listening.clear()
        if self._listener is not None:
            try:
                self._listener.close()
            finally:
                self._listener = None
