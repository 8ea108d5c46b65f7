"""Delivery workers: claim due deliveries, render each with the data as it is now, send, record."""

from __future__ import annotations

import collections
import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection, Engine

from channels import PermanentSendError, TransientSendError
from db import booking as bookings
from db import deliveries, recurring
from db import workflows as store
from db.codes import CapturedTable, DeliveryStatus
from db.mapping import MappingRefusal
from db.records import Booking, Delivery
from engine import quiet_hours, windows
from engine.context import build_context
from engine.errors import InvalidWorkflow, RenderError
from engine.actions import action_type
from engine.render import describe_recipients, duplicate_entry, keywords_used, recipient_count, render_action
from engine.retry import DEFAULT_POLICY, RetryPolicy
from engine.workflow import Action, Workflow
from scheduler.catalogue import parsed
from scheduler.conversation import optout_refusal, refusal_followups
from scheduler.metrics import Metrics
from scheduler.outage import GaveUp, Outage

logger = logging.getLogger(__name__)

# How often (seconds) a worker claims from the table before taking a batch handed over (see work).
TABLE_LOOK = 1.0
# A known outcome is retried while the database is away until this close to the end of its lease
# (at most): past it, the delivery may be reclaimed and attempted again.
LEASE_MARGIN = 5.0


class _LeaseLost(Exception):
    """Another attempt owns the delivery now."""


class Skip(Exception):
    """The delivery no longer applies (workflow or subject gone, workflow disabled)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What became of one attempt."""

    status: DeliveryStatus  # sent, pending (a retry), dead, skipped, or lost (see DeliveryStatus)
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Unrecorded:
    """An attempt's outcome, known but not yet written: written at once, before the next send starts."""

    delivery: Delivery
    outcome: Outcome
    finished: deliveries.Finished  # what to write
    announce: Callable[[], None]  # its log line, once written
    deadline: float  # on the monotonic clock: stop trying to write it then (its lease is ending)


@dataclass(frozen=True, slots=True, kw_only=True)
class Loaded:
    """What a batch of claimed deliveries refers to, read in one go: workflows (their rows, or as the
    consumer parsed them) and bookings by id."""

    workflows: dict[int, Any]
    bookings: dict[int, Booking]
    customers: dict[int, Booking]
    agendas: dict[int, Booking] = field(default_factory=dict)  # a schedule's, by delivery id


@dataclass(frozen=True, slots=True, kw_only=True)
class Handed:
    """Deliveries a consumer claimed in the transaction that wrote them, with what they refer to."""

    claims: list[Delivery]
    loaded: Loaded
    now: dt.datetime  # when they were claimed: their lease runs from then
    claimed: float  # on the monotonic clock, when they were handed over (just after the commit)


class Handoff:
    """Deliveries the consumer has just written and claimed, waiting for a worker of the same process.

    This spares a fresh delivery the worker's claim and reads: the consumer
    claims the ones due at once in its own transaction and hands them over
    with the workflows and bookings it has just read. Room is kept for as
    many as the workers take in one batch each, so no more wait here under
    a lease than the workers would hold claimed anyway; the rest stay
    pending for any worker of any instance. What is still here when the
    daemon stops is given back (see :meth:`DeliveryWorker.give_back`).
    """

    def __init__(self, lease: dt.timedelta, batch: int, workers: int):
        self.lease, self.batch = lease, batch
        self.capacity = batch * workers
        self._lock = threading.Lock()
        self._waiting: collections.deque[Handed] = collections.deque()
        self._count = 0

    def room(self) -> int:
        """How many more deliveries may be handed over now."""
        with self._lock:
            return max(0, self.capacity - self._count)

    def claim(self, conn: Connection, rows: list[dict[str, Any]], now: dt.datetime) -> list[Delivery]:
        """In the transaction that wrote these outbox *rows*: claim those due at once, as many as there
        is room for (to :meth:`put` once it commits)."""
        due = [row["idempotency_key"] for row in rows
               if row["status"] == DeliveryStatus.PENDING and row["next_attempt_at"] <= now]
        room = self.room()
        if not due or not room:
            return []
        return deliveries.claim_due_batch(conn, now, self.lease, min(room, len(due)), keys=due)

    def put(self, claims: list[Delivery], loaded: Loaded, now: dt.datetime) -> int:
        """Hand over claims made at *now* (committed), a worker's batch at a time; return how many batches."""
        claimed = time.monotonic()
        parts = [claims[i:i + self.batch] for i in range(0, len(claims), self.batch)]
        with self._lock:
            for part in parts:
                self._waiting.append(Handed(claims=part, loaded=loaded, now=now, claimed=claimed))
                self._count += len(part)
        return len(parts)

    def committed(self, claims: list[Delivery], loaded: Loaded | None, now: dt.datetime, written: int,
                  wake: Callable[[], None]) -> None:
        """Once the transaction that wrote *written* deliveries and made *claims* commits: hand the claims
        over, and wake a worker for each batch of them (one for the rest written, if none)."""
        for _ in range(self.put(claims, loaded, now) if claims else min(written, 1)):
            wake()

    def take(self) -> Handed | None:
        """The oldest batch waiting, if any."""
        with self._lock:
            if not self._waiting:
                return None
            handed = self._waiting.popleft()
            self._count -= len(handed.claims)
            return handed

    def take_all(self) -> list[Handed]:
        """Everything still waiting (the daemon stops)."""
        taken = []
        while (handed := self.take()) is not None:
            taken.append(handed)
        return taken


def _subject(delivery: Delivery) -> str:
    """What a delivery is about, in a sentence: "appointment 12", "staff 3" (a schedule's agenda)."""
    if delivery.subject_table in (CapturedTable.APPOINTMENTS, CapturedTable.CUSTOMERS):
        return f"{CapturedTable(delivery.subject_table).singular} {delivery.subject_id}"
    return f"the agenda of {delivery.subject_table} {delivery.subject_id}"


class DeliveryWorker:
    """Claims due deliveries a few at a time and attempts them; the daemon runs several in threads.

    A batch is claimed in one statement and what it refers to is read in one
    go; each delivery is then rendered, sent, and its outcome written in a
    short transaction of its own, fenced by its attempt, before the next send
    starts: a crash can then leave at most one sent message unrecorded per
    worker (the one under way), which is all that is sent again. A delivery
    whose turn comes after half its lease has gone is given back unattempted,
    so a slow batch cannot let a lease expire before its send.

    An outcome, once known, is kept and written as soon as the database
    answers: an outage between a send and its record delays the record, it
    does not let the lease expire into a second send. Only when the lease is
    about to end does the worker give the outcome up (and say so).
    """

    def __init__(self, engine: Engine, transports, *, company: dict[str, str],
                 policy: RetryPolicy = DEFAULT_POLICY, lease: dt.timedelta = dt.timedelta(minutes=2),
                 rng: random.Random | None = None, batch: int = 1,
                 clock: Callable[[], dt.datetime] | None = None, outage: Outage | None = None,
                 metrics: Metrics | None = None, send_window: windows.Window | None = None,
                 handoff: Handoff | None = None):
        self.engine = engine
        self.handoff = handoff  # deliveries the consumer and the firings claimed for us
        # Under a stream of handed batches, the table is still looked at first this often (see work).
        self.table_look = TABLE_LOOK
        self._next_table_look = 0.0  # on the monotonic clock
        self.send_window = send_window  # [workflows] send_window: quiet hours where an action has none
        self.transports = transports
        self.company = company
        self.policy = policy
        self.lease = lease
        self.rng = rng or random.Random()
        self.batch = batch
        self.clock = clock  # None: every outcome is recorded at the `now` the batch was claimed at
        self.outage = outage or Outage()
        self.metrics = metrics or Metrics()

    def _deadline(self, claimed: float) -> float:
        """When to stop trying to record an outcome of a batch claimed at *claimed* (monotonic)."""
        lease = self.lease.total_seconds()
        return claimed + lease - min(LEASE_MARGIN, lease / 10)

    def work_one(self, now: dt.datetime) -> Outcome | None:
        """Claim and attempt the next due delivery; None when nothing is due."""
        outcomes = self.work(now, limit=1)
        return outcomes[0] if outcomes else None

    def work(self, now: dt.datetime, *, limit: int | None = None) -> list[Outcome]:
        """Attempt a batch handed over, or claim up to *limit* (the batch size) due deliveries and attempt
        them; [] when nothing is due.

        A handed batch comes first, but at least every :attr:`table_look` seconds one batch is claimed
        from the table first: while fresh deliveries keep being handed over, the retries, a burst's
        overflow and those whose send window opened still go out, at the cost of one claim a second.
        """
        handoff = self.handoff if limit is None else None
        if handoff is not None:
            look = time.monotonic() >= self._next_table_look
            if look:
                self._next_table_look = time.monotonic() + self.table_look
            elif (handed := handoff.take()) is not None:
                return self._attempt_handed(handed)
        with self.engine.begin() as conn:
            claims = deliveries.claim_due_batch(conn, now, self.lease, limit or self.batch)
            loaded = self._load_all(conn, claims) if claims else None
        self.outage.answered()
        if claims:
            return self._attempt_all(claims, loaded, now, self._deadline(time.monotonic()))
        if handoff is not None and (handed := handoff.take()) is not None:
            return self._attempt_handed(handed)
        return []

    def _attempt_handed(self, handed: Handed) -> list[Outcome]:
        return self._attempt_all(handed.claims, handed.loaded, handed.now, self._deadline(handed.claimed))

    def _attempt_all(self, claims: list[Delivery], loaded: Loaded, now: dt.datetime,
                     deadline: float) -> list[Outcome]:
        """Attempt claims made at *now*, one after the other, each recorded before the next."""
        outcomes: list[Outcome] = []
        for n, claim in enumerate(claims):
            at = self.clock() if self.clock else now
            # Half the lease gone, or the database away until the lease's end: the rest would risk a
            # send after their lease, i.e. twice.
            if at - now > self.lease / 2 or time.monotonic() >= deadline:
                self._give_back(claims[n:], at, deadline)
                break
            result = self._attempt(claim, loaded, at, deadline)
            outcomes.append(result if isinstance(result, Outcome) else self._record(result))
        return outcomes

    def attempt(self, delivery: Delivery, now: dt.datetime) -> Outcome:
        """Render and send one claimed delivery and record the outcome."""
        with self.engine.connect() as conn:
            loaded = self._load_all(conn, [delivery])
        result = self._attempt(delivery, loaded, now, self._deadline(time.monotonic()))
        return result if isinstance(result, Outcome) else self._record(result)

    def _record(self, u: _Unrecorded) -> Outcome:
        """Write one outcome in a transaction of its own, fenced by its attempt; then say what became of it.

        While the database is away the write is tried again until it lands or the lease is
        about to end. One short transaction per send costs a commit each (the claim and the
        reads stay batched), and buys the crash guarantee: nothing sent is left unrecorded
        while the next send goes out.
        """
        tries = 0

        def write() -> bool:
            nonlocal tries
            tries += 1
            with self.engine.begin() as conn:
                return deliveries.record_outcome(conn, u.finished, again=tries > 1)

        try:
            owned = self.outage.persist(f"recording the outcome of delivery {u.delivery.id}", write,
                                        deadline=u.deadline)
        except GaveUp:
            return self._unrecorded(u)
        if not owned:
            return self._lost(u.delivery, u.outcome.status)
        u.announce()
        return self._counted(u.delivery, u.outcome)

    def _counted(self, delivery: Delivery, outcome: Outcome) -> Outcome:
        retrying = outcome.status == DeliveryStatus.PENDING
        self.metrics.delivered(delivery.action_type, "retry" if retrying else outcome.status)
        return outcome

    def _unrecorded(self, u: _Unrecorded) -> Outcome:
        logger.warning("delivery %s: its outcome (%s) could not be recorded before its lease ended: the "
                       "database was away; it will be reclaimed and attempted again", u.delivery.id,
                       u.outcome.status, extra={"delivery": u.delivery.id})
        return self._counted(u.delivery, Outcome(status=DeliveryStatus.LOST, error="outcome not recorded: the "
                                                 "database was away until the lease ended"))

    def give_back(self, handed: list[Handed], now: dt.datetime) -> None:
        """Give back deliveries handed over but not attempted (the daemon stops): pending again."""
        claims = [claim for batch in handed for claim in batch.claims]
        if claims:
            self._give_back(claims, now, min(self._deadline(batch.claimed) for batch in handed), why="not attempted")

    def _give_back(self, claims: list[Delivery], now: dt.datetime, deadline: float,
                   why: str = "half their lease had gone") -> None:
        def release() -> None:
            with self.engine.begin() as conn:
                for claim in claims:
                    deliveries.release(conn, claim, now)

        try:
            self.outage.persist(f"giving back {len(claims)} claimed deliveries", release, deadline=deadline)
        except GaveUp:
            return  # unattempted: reclaimed when their lease ends, and sent once then
        logger.info("gave back %d claimed deliveries unattempted: %s", len(claims), why)

    @staticmethod
    def _load_all(conn: Connection, claims: list[Delivery]) -> Loaded:
        appointments = {c.subject_id for c in claims if c.subject_table == CapturedTable.APPOINTMENTS}
        customers = {c.subject_id for c in claims if c.subject_table == CapturedTable.CUSTOMERS}
        rows = store.get_workflows(conn, {c.workflow_id for c in claims})
        found = bookings.bookings_by_id(conn, appointments) if appointments else {}
        people = {i: bookings.load_customer_booking(conn, i) for i in customers}
        agendas = {c.id: recurring.load_agenda(conn, c.subject_table, c.subject_id, c.context.get("appointment_ids", []))
                   for c in claims if c.subject_table in recurring.AGENDA_TABLES}
        return Loaded(workflows=rows, bookings=found, customers={i: b for i, b in people.items() if b},
                       agendas={i: b for i, b in agendas.items() if b})

    def _attempt(self, delivery: Delivery, loaded: Loaded, now: dt.datetime,
                 deadline: float) -> Outcome | _Unrecorded:
        extra = {"delivery": delivery.id, "workflow": delivery.workflow_id}
        rendered = recipients = address = None
        try:
            action, booking = self._resolve(delivery, loaded)
            when = quiet_hours.schedule(action, booking, delivery.recipient_index, due=delivery.next_attempt_at,
                                        now=now, default=self.send_window, context=delivery.context)
            if isinstance(when, windows.Skip):
                raise Skip(when.reason)
            if when is not None and when.at > now:  # due outside its window (a retry, a resend at night)
                return self._defer(delivery, action, booking, when, now, deadline)
            context = build_context(booking, company=self.company, extra=delivery.context,
                                    names=keywords_used(action))
            if delivery.recipient_index is not None:
                earlier = duplicate_entry(action, booking, context, delivery.recipient_index)
                if earlier is not None:
                    raise Skip(f"recipient entry {delivery.recipient_index} is the same recipient as entry "
                               f"{earlier}: one message each")
            rendered = render_action(action, booking, context, delivery.recipient_index)
            recipients = describe_recipients(action.type, rendered)
            address = action_type(action.type).conversation_address(rendered)
            self._check_optout(action.type, address)
            if action_type(action.type).changes_status:  # written in the database, not sent
                if getattr(self.transports, "dry_run", False):
                    return self._would_set_status(delivery, rendered, recipients, now, deadline)
                return self._set_status(delivery, rendered, recipients, now, deadline)
            started = time.monotonic()
            try:
                receipt = self.transports.send(action.type, rendered, delivery)
            finally:
                self.metrics.sent_in(action.type, time.monotonic() - started)
        except Skip as reason:
            return self._final(delivery, now, DeliveryStatus.SKIPPED, str(reason), rendered, recipients, deadline)
        except (RenderError, InvalidWorkflow) as error:
            return self._final(delivery, now, DeliveryStatus.DEAD, f"cannot render: {error}", rendered, recipients,
                               deadline)
        except PermanentSendError as error:
            return self._final(delivery, now, DeliveryStatus.DEAD, str(error), rendered, recipients, deadline,
                               followups=refusal_followups(delivery, address, error, now))
        except TransientSendError as error:
            return self._retry(delivery, now, str(error), rendered, recipients, deadline)
        except Exception as error:  # noqa: BLE001 - unexpected: log it, treat it as passing
            logger.exception("delivery %s failed unexpectedly", delivery.id, extra=extra)
            return self._retry(delivery, now, f"{type(error).__name__}: {error}", rendered, recipients, deadline)
        return _Unrecorded(
            delivery=delivery, outcome=Outcome(status=DeliveryStatus.SENT), deadline=deadline,
            finished=deliveries.sent(delivery, now, provider_id=receipt.provider_id, rendered=rendered,
                                     recipients=recipients, address=address),
            announce=lambda: logger.info("delivery %s sent (%s to %s)", delivery.id, delivery.action_type,
                                         recipients, extra=extra))

    def _defer(self, delivery: Delivery, action: Action, booking: Booking, when: windows.Send, now: dt.datetime,
               deadline: float) -> Outcome:
        """Give a delivery due outside its send window back, pending until the window opens; the attempt
        is not counted (nothing was tried)."""
        record = quiet_hours.deferral(delivery.next_attempt_at, when, action, booking, delivery.recipient_index,
                                      self.send_window)
        note = quiet_hours.waiting_note(record)

        def write() -> bool:
            with self.engine.begin() as conn:
                return deliveries.defer(conn, delivery, now, at=when.at, note=note,
                                        context={**delivery.context, quiet_hours.DEFERRAL: record})

        try:
            owned = self.outage.persist(f"deferring delivery {delivery.id} to its send window", write,
                                        deadline=deadline)
        except GaveUp:
            return Outcome(status=DeliveryStatus.LOST, error="the database was away until the lease ended")
        if not owned:
            return self._lost(delivery, "deferred")
        logger.info("delivery %s %s", delivery.id, note, extra={"delivery": delivery.id})
        return Outcome(status=DeliveryStatus.PENDING, error=note)

    def _check_optout(self, type_name: str, address: str | None) -> None:
        """Skip a message to a number on its channel's opt-out list, before anything reaches the provider."""
        channel = action_type(type_name).optout_channel
        if channel is None:
            return
        with self.engine.connect() as conn:
            refusal = optout_refusal(conn, channel, address)
        if refusal is not None:
            raise Skip(refusal)

    def _lost(self, delivery: Delivery, outcome: str) -> Outcome:
        logger.warning("delivery %s: attempt %d ended (%s) after its lease expired and the delivery was "
                       "reclaimed; the outcome of the newer attempt stands", delivery.id, delivery.attempts,
                       outcome, extra={"delivery": delivery.id})
        return self._counted(delivery, Outcome(status=DeliveryStatus.LOST, error="lease expired during the attempt"))

    def _resolve(self, delivery: Delivery, loaded: Loaded) -> tuple[Action, Booking]:
        row = loaded.workflows.get(delivery.workflow_id)
        if row is None:
            raise Skip("workflow deleted")
        if delivery.subject_table == CapturedTable.APPOINTMENTS:
            booking = loaded.bookings.get(delivery.subject_id)
        elif delivery.subject_table == CapturedTable.CUSTOMERS:
            booking = loaded.customers.get(delivery.subject_id)
        else:
            booking = loaded.agendas.get(delivery.id)
        if not row.enabled:
            raise Skip("workflow disabled")
        workflow = row if isinstance(row, Workflow) else parsed(row)  # handed over parsed by the consumer
        action = next((a for a in workflow.actions if a.id == delivery.action_id), None)
        if action is None:
            raise Skip("the action no longer exists in the workflow")
        if booking is None:
            raise Skip(f"{_subject(delivery)} no longer exists")
        if delivery.recipient_index is not None and delivery.recipient_index >= (recipient_count(action) or 0):
            raise Skip(f"recipient entry {delivery.recipient_index} was removed from the action")
        return action, booking

    def _set_status(self, delivery: Delivery, rendered: dict[str, Any], recipients: str,
                    now: dt.datetime, deadline: float) -> Outcome:
        """Change the status and record the delivery sent in one transaction, tried again (it is
        idempotent) while the database is away."""
        def change() -> None:
            with self.engine.begin() as conn:
                found = bookings.set_appointment_status(conn, delivery.subject_id, rendered["status"],
                                                        delivery.depth + 1)
                if not found:
                    raise Skip(f"appointment {delivery.subject_id} no longer exists")
                if not deliveries.mark_sent(conn, delivery, now, provider_id=None, rendered=rendered,
                                            recipients=recipients):
                    raise _LeaseLost  # roll the status change back: the newer attempt makes it

        try:
            self.outage.persist(f"setting the status of appointment {delivery.subject_id}", change,
                                deadline=deadline)
        except _LeaseLost:
            return self._lost(delivery, "status set")
        except MappingRefusal as error:  # a status the application's mapping cannot write
            return self._final(delivery, now, DeliveryStatus.DEAD, str(error), rendered, recipients, deadline)
        except GaveUp:
            logger.warning("delivery %s: the status could not be set before its lease ended: the database "
                           "was away; it will be reclaimed and attempted again", delivery.id,
                           extra={"delivery": delivery.id})
            return self._counted(delivery, Outcome(status=DeliveryStatus.LOST,
                                                   error="the database was away until the lease ended"))
        return self._counted(delivery, Outcome(status=DeliveryStatus.SENT))

    @staticmethod
    def _would_set_status(delivery: Delivery, rendered: dict[str, Any], recipients: str, now: dt.datetime,
                          deadline: float) -> _Unrecorded:
        """Dry run: record what set_status would write; the appointment is left as it is."""
        extra = {"delivery": delivery.id, "appointment": delivery.subject_id}
        return _Unrecorded(
            delivery=delivery, outcome=Outcome(status=DeliveryStatus.SENT), deadline=deadline,
            finished=deliveries.sent(delivery, now, provider_id="dry-run: not written", rendered=rendered,
                                     recipients=recipients),
            announce=lambda: logger.info("delivery %s: dry run, appointment %s would be set to %r (not written)",
                                         delivery.id, delivery.subject_id, rendered["status"], extra=extra))

    def _retry(self, delivery: Delivery, now: dt.datetime, error: str, rendered, recipients,
               deadline: float) -> _Unrecorded:
        at = self.policy.next_attempt(delivery.attempts, now, self.rng)
        if at is None:
            return self._final(delivery, now, DeliveryStatus.DEAD,
                               f"gave up after {delivery.attempts} attempts: {error}",
                               rendered, recipients, deadline)
        return _Unrecorded(
            delivery=delivery, outcome=Outcome(status=DeliveryStatus.PENDING, error=error), deadline=deadline,
            finished=deliveries.retry(delivery, now, at=at, error=error, rendered=rendered, recipients=recipients),
            announce=lambda: logger.warning("delivery %s failed (attempt %d), retrying at %s: %s", delivery.id,
                                            delivery.attempts, at.isoformat(), error,
                                            extra={"delivery": delivery.id}))

    @staticmethod
    def _final(delivery: Delivery, now: dt.datetime, status: DeliveryStatus, error: str, rendered,
               recipients, deadline: float, followups=()) -> _Unrecorded:
        log = logger.warning if status == DeliveryStatus.DEAD else logger.info
        return _Unrecorded(
            delivery=delivery, outcome=Outcome(status=status, error=error), deadline=deadline,
            finished=deliveries.final(delivery, now, status=status, error=error, rendered=rendered,
                                      recipients=recipients, followups=followups),
            announce=lambda: log("delivery %s %s: %s", delivery.id, status, error, extra={"delivery": delivery.id}))
