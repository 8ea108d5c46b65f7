"""Every table apptflow reads or writes, in one SQLAlchemy ``MetaData``.

Three groups: the booking tables (the contract with the booking application),
the workflow tables (what admins edit, by CLI or SQL) and the engine tables
(change capture and the delivery outbox). APScheduler's ``apscheduler_jobs``
is created by APScheduler itself.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from db.types import CalendarDate, JSONDocument, ShortText, UTCDateTime

metadata = MetaData()

# SQLite only auto-assigns INTEGER PRIMARY KEY, not BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# MySQL's FLOAT is single precision: a coordinate would lose its last digits.
Double = Float().with_variant(Float(53), "mysql")


class utcnow(FunctionElement):
    """The current time as the column type stores it, usable as a server default."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(utcnow, "postgresql")
def _utcnow_pg(element, compiler, **kw):
    return "now()"


@compiles(utcnow, "sqlite")
def _utcnow_sqlite(element, compiler, **kw):
    return "(strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))"


@compiles(utcnow, "mysql")
def _utcnow_mysql(element, compiler, **kw):
    # In parentheses: MySQL takes a function as a column default only as an expression.
    return "(UTC_TIMESTAMP(6))"


class empty_json(FunctionElement):
    """An empty JSON object, as a server default (MySQL takes none but an expression on a JSON column)."""

    type = JSONDocument
    inherit_cache = True


@compiles(empty_json)
def _empty_json(element, compiler, **kw):
    return "'{}'"


@compiles(empty_json, "mysql")
def _empty_json_mysql(element, compiler, **kw):
    return "('{}')"


def _created_at() -> Column:
    return Column("created_at", UTCDateTime(), nullable=False, server_default=utcnow())


def _updated_at() -> Column:
    return Column("updated_at", UTCDateTime(), nullable=False, server_default=utcnow())


# --- booking tables ---------------------------------------------------------

locations = Table(
    "locations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("address", Text),
    Column("timezone", ShortText, nullable=False, server_default="UTC"),
    Column("phone", Text),
    Column("notes", Text),
    Column("image_url", Text),
    # where the location is, for location_google_maps_url (else its address is searched)
    Column("latitude", Double),
    Column("longitude", Double),
)

services = Table(
    "services",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("price", Numeric(12, 2)),
    Column("duration_minutes", Integer),
    Column("category", Text),
    Column("notes", Text),
    Column("color", Text),
    Column("image_url", Text),
)

staff = Table(
    "staff",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("email", Text),
    Column("phone", Text),
    Column("telegram_chat_id", Text),
    Column("about", Text),
    Column("image_url", Text),
)

customers = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("first_name", Text),
    Column("last_name", Text),
    Column("email", Text),
    Column("phone", Text),
    Column("locale", Text),
    Column("timezone", Text),
    Column("telegram_chat_id", Text),
    Column("custom", JSONDocument),
    _created_at(),
    Column("birthday", CalendarDate()),
    Column("notes", Text),
    Column("image_url", Text),
)

appointments = Table(
    "appointments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id")),
    Column("service_id", Integer, ForeignKey("services.id")),
    Column("staff_id", Integer, ForeignKey("staff.id")),
    Column("location_id", Integer, ForeignKey("locations.id")),
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("ends_at", UTCDateTime(), nullable=False),
    Column("status", ShortText, nullable=False, server_default="pending"),
    Column("started_by", ShortText, nullable=False, server_default="frontend"),
    Column("locale", Text),
    Column("custom", JSONDocument),
    _created_at(),
    _updated_at(),
    Column("notes", Text),
    # what the booking costs in all, what was paid and the discount granted (no currency)
    Column("total_price", Numeric(12, 2)),
    Column("paid_price", Numeric(12, 2)),
    Column("discount_price", Numeric(12, 2)),
    Column("payment_method", Text),
    # the customer and the people they bring
    Column("attendees", Integer, nullable=False, server_default=text("1")),
    # time kept free around the appointment
    Column("buffer_before_minutes", Integer),
    Column("buffer_after_minutes", Integer),
)

# The recurring triggers' reads: visits that ended on given days, a customer's or a staff member's
# appointments, everyone's in a window (revision 0004).
Index("appointments_by_end", appointments.c.ends_at)
Index("appointments_by_start", appointments.c.starts_at)
Index("appointments_by_customer", appointments.c.customer_id, appointments.c.starts_at)
Index("appointments_by_staff", appointments.c.staff_id, appointments.c.starts_at)

# --- workflow tables --------------------------------------------------------

workflows = Table(
    "workflows",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", ShortText, nullable=False, unique=True),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("trigger_type", Text, nullable=False),
    # trigger parameters: offset, grace, from, to
    Column("trigger", JSONDocument, nullable=False, server_default=empty_json()),
    Column("filters", JSONDocument, nullable=False, server_default=empty_json()),
    # filled by apptflow when the row (or one of its actions) is invalid
    Column("error", Text),
    _created_at(),
    _updated_at(),
)

workflow_actions = Table(
    "workflow_actions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "workflow_id",
        Integer,
        ForeignKey("workflows.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("position", Integer, nullable=False),
    Column("type", Text, nullable=False),
    # every field of the action but its type: to, subject, body, url, ...
    Column("config", JSONDocument, nullable=False, server_default=empty_json()),
    UniqueConstraint("workflow_id", "position"),
)

# --- engine tables ----------------------------------------------------------

change_events = Table(
    "change_events",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("table_name", Text, nullable=False),
    Column("row_id", BigInteger, nullable=False),
    Column("op", Text, nullable=False),  # INSERT | UPDATE | DELETE
    Column("old", JSONDocument),
    Column("new", JSONDocument),
    # set_status chain depth of the change that caused this event (0 = from outside)
    Column("depth", Integer, nullable=False, server_default=text("0")),
    _created_at(),
    Column("processed_at", UTCDateTime()),
    # why handling failed, when it did (the event is not retried: see docs/pipeline.md)
    Column("error", Text),
    # What picks the event's partition (docs/scale-out.md), its remainder by [daemon] partitions: NULL for a
    # captured change (its row_id); the appointment's id for something received; a copy's partition.
    Column("partition_key", BigInteger),
    # Ids are part of idempotency keys: SQLite must never reuse one after old events are purged.
    sqlite_autoincrement=True,
)
Index("change_events_pending", change_events.c.processed_at, change_events.c.id)

# PostgreSQL: changes the capture trigger could not record (it never fails the application's statement).
capture_errors = Table(
    "capture_errors",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("table_name", Text, nullable=False),
    Column("op", Text, nullable=False),
    Column("row_doc", JSONDocument),  # the captured columns of the row, when they could be read
    Column("error", Text, nullable=False),
    _created_at(),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigId, primary_key=True),
    # (workflow, action, subject, occurrence): a replay cannot insert twice
    Column("idempotency_key", ShortText, nullable=False, unique=True),
    Column("workflow_id", Integer, nullable=False),
    Column("action_id", Integer),
    Column("action_position", Integer, nullable=False),
    Column("action_type", Text, nullable=False),
    # for per-recipient channels (sms, whatsapp, telegram): which entry of the list
    Column("recipient_index", Integer),
    # what to do with a send interrupted by a crash: resend | hold (-> unknown)
    Column("after_crash", ShortText, nullable=False, server_default="resend"),
    # appointments | customers | staff, locations, company (a schedule's agenda; the company's id is 0)
    Column("subject_table", Text, nullable=False),
    Column("subject_id", BigInteger, nullable=False),
    Column("event_id", BigInteger),
    Column("occurrence", Text, nullable=False),
    # what the trigger adds to the template context: old/new status, fire time, ...
    Column("context", JSONDocument, nullable=False, server_default=empty_json()),
    Column("depth", Integer, nullable=False, server_default=text("0")),
    # pending | sending | sent | dead | unknown | skipped | missed
    Column("status", ShortText, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UTCDateTime(), nullable=False, server_default=utcnow()),
    Column("lease_until", UTCDateTime()),
    Column("recipients", Text),
    Column("rendered", JSONDocument),
    Column("provider_id", Text),
    Column("error", Text),
    _created_at(),
    _updated_at(),
    Column("sent_at", UTCDateTime()),
    # what the provider said of the message after it was sent (Twilio's status callbacks, docs/replies.md):
    # queued | sent | delivered | undelivered | failed | read, its error ("30003: ...") and when
    Column("provider_status", ShortText),
    Column("provider_error", Text),
    Column("provider_updated_at", UTCDateTime()),
    # the phone number or chat id a conversation channel sent to: a reply from it is matched here
    Column("address", ShortText),
    sqlite_autoincrement=True,
)
Index("deliveries_due", deliveries.c.status, deliveries.c.next_attempt_at)
Index("deliveries_by_workflow", deliveries.c.workflow_id, deliveries.c.id)
Index("deliveries_by_address", deliveries.c.address, deliveries.c.sent_at)
# A status callback names the message by its SID (34 characters); MySQL indexes a TEXT column by a prefix.
Index("deliveries_by_provider_id", deliveries.c.provider_id, mysql_length=64)

instances = Table(
    "instances",
    metadata,
    Column("id", ShortText, primary_key=True),
    Column("hostname", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("heartbeat_at", UTCDateTime(), nullable=False),
    Column("stopped_at", UTCDateTime()),
    # [daemon] partitions as this instance runs with, and the partitions it leads ("0,3"; "" for none)
    Column("partitions", Integer),
    Column("leads", Text),
)

# --- the conversation: what comes back (docs/replies.md) ----------------------

# Every message received from a customer: a reply, an opt-out or opt-in word, or one that matched nothing.
inbound_messages = Table(
    "inbound_messages",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("channel", ShortText, nullable=False),  # sms | whatsapp | telegram
    Column("sender", ShortText, nullable=False),  # an E.164 number, or a Telegram chat id
    Column("body", Text, nullable=False),
    # Twilio's MessageSid, or telegram:<update id>: a request Twilio sends again is recorded once
    Column("provider_id", ShortText, nullable=False, unique=True),
    Column("outcome", ShortText, nullable=False),  # reply | unmatched | opt_out | opt_in
    Column("delivery_id", BigInteger),  # the message it answers
    Column("appointment_id", BigInteger),
    Column("received_at", UTCDateTime(), nullable=False),
    sqlite_autoincrement=True,
)
Index("inbound_messages_by_time", inbound_messages.c.received_at)

# Numbers that asked for no more messages on a channel (STOP, or Twilio's error 21610).
optouts = Table(
    "optouts",
    metadata,
    Column("channel", ShortText, primary_key=True),  # sms | whatsapp
    Column("address", ShortText, primary_key=True),  # E.164
    Column("since", UTCDateTime(), nullable=False),
    Column("reason", Text, nullable=False),
)

# Where a polled source of messages stands (Telegram's getUpdates offset), so a restart reads on from there.
inbound_offsets = Table(
    "inbound_offsets",
    metadata,
    Column("source", ShortText, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# --- time-offset jobs -------------------------------------------------------

# APScheduler 3's SQLAlchemyJobStore table, declared here too so that db init
# creates it and the queries below can read and batch-write it.
apscheduler_jobs = Table(
    "apscheduler_jobs",
    metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
    # the subject's id (an appointment's, a customer's, a schedule target's): its remainder by
    # [daemon] partitions is the partition whose leader runs the job (docs/scale-out.md)
    Column("partition_key", BigInteger),
)

# Jobs APScheduler could not restore (a renamed function, unpicklable state):
# kept here and reported instead of being deleted.
apscheduler_failed_jobs = Table(
    "apscheduler_failed_jobs",
    metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25)),
    Column("job_state", LargeBinary, nullable=False),
    Column("error", Text, nullable=False),
    Column("failed_at", UTCDateTime(), nullable=False),
)

# --- a mapping onto the application's own tables (db/mapping.py) -------------

# The installed mapping: one row, none for the reference tables.
booking_mapping = Table(
    "booking_mapping",
    metadata,
    Column("name", ShortText, primary_key=True),
    Column("source", Text),
    Column("statuses", JSONDocument, nullable=False, server_default=empty_json()),  # apptflow's → the application's
    Column("set_status", Text),
    Column("read_only", Text),
    Column("absent", JSONDocument, nullable=False, server_default=empty_json()),  # "table.column" → why
    _created_at(),
)

# The last values change capture saw of each row of a mapped view, to tell what a write changed.
capture_snapshots = Table(
    "capture_snapshots",
    metadata,
    Column("table_name", ShortText, primary_key=True),
    Column("row_id", BigInteger, primary_key=True),
    Column("doc", JSONDocument),
    Column("gone", Boolean, nullable=False, server_default=text("false")),
)

BOOKING_TABLES = (locations, services, staff, customers, appointments)
