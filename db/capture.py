"""Change capture: database triggers that append to ``change_events``.

Installed by ``apptflow db init`` / ``db upgrade`` (and reinstalled every time,
so a trigger change needs no migration). Every insert, delete and update of a
watched column becomes one row in ``change_events`` inside the writer's own
transaction: nothing is lost while the daemon is down, a rolled-back change
leaves nothing behind, and every intermediate status is seen.

The triggers' SQL is each server's (:mod:`db.servers`). On PostgreSQL the
trigger also ``pg_notify``-s :data:`db.servers.postgresql.NOTIFY_CHANNEL` with
the table name, so a listening daemon wakes at once. A ``set_status`` action
marks its own writes with the chain depth (``SET LOCAL apptflow.depth`` on
PostgreSQL, the session variable ``@apptflow_depth`` on MySQL/MariaDB; see
:func:`db.booking.set_appointment_status` for SQLite).

MySQL/MariaDB have no notifications: the daemon polls (see the default poll
interval there). Their triggers, like PostgreSQL's, never fail the writer's
statement: an error is caught by a handler and recorded in ``capture_errors``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection

from db.servers import server_for


@dataclass(frozen=True, slots=True, kw_only=True)
class Watch:
    """A captured table: which columns an update must touch to count, and which are recorded."""

    table: str
    watched: tuple[str, ...]
    # SQLite only: columns whose values go into the event (JSON-valued
    # columns are left out there: a malformed value written by hand would
    # make the writer's own statement fail).
    recorded_sqlite: tuple[str, ...] | None = None

    @property
    def booking(self) -> bool:
        """Whether the table is a booking table (else one of apptflow's own)."""
        return self.table in BOOKING_WATCHED


WATCHES = (
    Watch(
        table="appointments",
        watched=(
            "customer_id", "service_id", "staff_id", "location_id",
            "starts_at", "ends_at", "status", "started_by", "locale",
        ),
    ),
    Watch(table="customers", watched=("locale", "timezone", "birthday")),
    Watch(
        table="workflows",
        watched=("name", "enabled", "trigger_type", "trigger", "filters"),
        recorded_sqlite=("name", "enabled", "trigger_type"),
    ),
    Watch(
        table="workflow_actions",
        watched=("workflow_id", "position", "type", "config"),
        recorded_sqlite=("workflow_id", "position", "type"),
    ),
)

BOOKING_WATCHED = ("appointments", "customers")  # the booking tables whose changes are events


def install_triggers(conn: Connection, *, booking: bool = True) -> None:
    """(Re)install the change-capture triggers of the connection's server: on the workflow tables, and on
    the reference booking tables unless *booking* is false (a mapping captures the application's own)."""
    server_for(conn).install_capture(conn, [w for w in WATCHES if booking or not w.booking])


def capture_triggers(conn: Connection) -> list[str]:
    """The names of apptflow's capture triggers in the database."""
    return server_for(conn).capture_triggers(conn)
