"""Plain frozen values that queries hand back: no ORM rows leave ``db/``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from db.codes import RECEIVED_TABLES, CapturedTable


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRow:
    """A ``workflow_actions`` row; ``config`` is the column's JSON text, undecoded."""

    id: int
    position: int
    type: str
    config: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowRow:
    """A ``workflows`` row with its actions in position order; JSON columns as undecoded text.

    JSON arrives as text so that a malformed value written by hand is reported
    by whoever decodes it instead of failing the query.
    """

    id: int
    name: str
    enabled: bool
    trigger_type: str
    trigger: str
    filters: str
    error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    actions: tuple[ActionRow, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class KnownIds:
    """The ids present in the booking tables that filters can name."""

    locations: frozenset[int]
    services: frozenset[int]
    staff: frozenset[int]
    statuses: frozenset[str] | None = None  # the statuses set_status may write; None: not checked
    statuses_from: str = "configure more in [workflows] statuses"  # where they come from, for messages
    read_only: str | None = None  # why set_status cannot write (a read-only mapping); None: it can
    absent: dict[str, str] = field(default_factory=dict)  # booking columns without data ("table.column": why)



@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeEvent:
    """A captured insert, update or delete, with the watched columns' old and new values."""

    id: int
    table_name: str
    row_id: int
    op: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    depth: int
    created_at: dt.datetime
    # What picks its partition (docs/scale-out.md): None for a captured change (by row_id)
    partition_key: int | None = None

    @property
    def copy(self) -> bool:
        """Whether it is a captured change copied to another partition for that partition's planning
        (docs/scale-out.md): followed there, never matched again."""
        return self.partition_key is not None and not self.received

    @property
    def received(self) -> bool:
        """Whether the daemon wrote it for something it received (a reply, a receipt), not a capture trigger."""
        return self.table_name in RECEIVED_TABLES

    @property
    def subject_table(self) -> str:
        """The table of the row the event is about: its own, or for something received the appointment's."""
        return CapturedTable.APPOINTMENTS if self.received else self.table_name

    @property
    def subject_id(self) -> int:
        return int(self.new["appointment_id"]) if self.received else self.row_id


@dataclass(frozen=True, slots=True, kw_only=True)
class Location:
    id: int
    name: str
    address: str | None
    timezone: str
    phone: str | None = None
    notes: str | None = None
    image_url: str | None = None
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    id: int
    name: str
    price: Any
    duration_minutes: int | None
    category: str | None = None
    notes: str | None = None
    color: str | None = None
    image_url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Staff:
    id: int
    name: str
    email: str | None
    phone: str | None
    telegram_chat_id: str | None
    about: str | None = None
    image_url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Customer:
    id: int
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    locale: str | None
    timezone: str | None
    telegram_chat_id: str | None
    custom: dict[str, Any]
    created_at: dt.datetime
    # a date, or the text the booking application wrote when it is not an ISO date
    birthday: dt.date | str | None = None
    notes: str | None = None
    image_url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Appointment:
    id: int
    customer_id: int | None
    service_id: int | None
    staff_id: int | None
    location_id: int | None
    starts_at: dt.datetime
    ends_at: dt.datetime
    status: str
    started_by: str
    locale: str | None
    custom: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    notes: str | None = None
    total_price: Any = None
    paid_price: Any = None
    discount_price: Any = None
    payment_method: str | None = None
    attendees: int = 1
    buffer_before_minutes: int | None = None
    buffer_after_minutes: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Booking:
    """An appointment (or, for customer triggers and schedules, none) with the rows it refers to, as they are now."""

    appointment: Appointment | None
    customer: Customer | None
    service: Service | None = None
    staff: Staff | None = None
    location: Location | None = None
    # A schedule's firing: the staff member's, location's or company's appointments it lists (the subject
    # is then the staff member or location above, or neither for the company).
    agenda: tuple[Booking, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """A ``deliveries`` row: one action to perform for one subject and occurrence."""

    id: int
    idempotency_key: str
    workflow_id: int
    action_id: int | None
    action_position: int
    action_type: str
    recipient_index: int | None
    after_crash: str
    subject_table: str
    subject_id: int
    event_id: int | None
    occurrence: str
    context: dict[str, Any]
    depth: int
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    lease_until: dt.datetime | None
    recipients: str | None
    rendered: Any
    provider_id: str | None
    error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    sent_at: dt.datetime | None
    provider_status: str | None = None  # what the provider's receipts said last (docs/replies.md)
    provider_error: str | None = None
    provider_updated_at: dt.datetime | None = None
    address: str | None = None  # the number or chat id a conversation channel sent to


@dataclass(frozen=True, slots=True, kw_only=True)
class InboundMessage:
    """A message received from a customer (an ``inbound_messages`` row)."""

    id: int
    channel: str
    sender: str
    body: str
    provider_id: str
    outcome: str
    delivery_id: int | None
    appointment_id: int | None
    received_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class OptOut:
    """A number that asked for no more messages on a channel."""

    channel: str
    address: str
    since: dt.datetime
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Instance:
    """A running (or stopped) ``apptflow run`` process."""

    id: str
    hostname: str
    pid: int
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    stopped_at: dt.datetime | None
    partitions: int | None = None  # the [daemon] partitions it runs with (None: started before 0006)
    leads: str | None = None  # the partitions it leads, "0,3"
