"""Change capture: database triggers that append to ``change_events``.

Installed by ``apptflow db init`` / ``db upgrade`` (and reinstalled every time,
so a trigger change needs no migration). Every insert, delete and update of a
watched column becomes one row in ``change_events`` inside the writer's own
transaction: nothing is lost while the daemon is down, a rolled-back change
leaves nothing behind, and every intermediate status is seen.

On PostgreSQL the trigger also ``pg_notify``-s :data:`NOTIFY_CHANNEL` with the
table name, so a listening daemon wakes at once. A ``set_status`` action marks
its own writes with the chain depth (``SET LOCAL apptflow.depth`` on
PostgreSQL, the session variable ``@apptflow_depth`` on MySQL/MariaDB; see
:func:`db.booking.set_appointment_status` for SQLite).

MySQL/MariaDB have no notifications: the daemon polls (see the default poll
interval there). Their triggers, like PostgreSQL's, never fail the writer's
statement: an error is caught by a handler and recorded in ``capture_errors``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from db.connect import own_prefix, own_schema, own_table
from db.mysql_triggers import error_handler, replace_trigger

NOTIFY_CHANNEL = "apptflow_events"


@dataclass(frozen=True, slots=True, kw_only=True)
class Watch:
    """A captured table: which columns an update must touch to count, and which are recorded."""

    table: str
    watched: tuple[str, ...]
    # SQLite only: columns whose values go into the event (JSON-valued
    # columns are left out there: a malformed value written by hand would
    # make the writer's own statement fail).
    recorded_sqlite: tuple[str, ...] | None = None


WATCHES = (
    Watch(
        table="appointments",
        watched=(
            "customer_id", "service_id", "staff_id", "location_id",
            "starts_at", "ends_at", "status", "started_by", "locale",
        ),
    ),
    Watch(table="customers", watched=("locale", "timezone")),
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


def _pg_function(schema: str) -> str:
    """The capture function, in apptflow's *schema*; every name it uses is qualified, since it runs
    with the search path of whoever writes. It never fails the writer's statement: an error is caught,
    raised as a WARNING in the server's log and recorded in ``capture_errors`` when that is possible."""
    return f"""
CREATE OR REPLACE FUNCTION {schema}.apptflow_capture() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_doc jsonb;
    new_doc jsonb;
    chain_depth integer;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        SELECT jsonb_object_agg(key, value) INTO old_doc
        FROM jsonb_each(to_jsonb(OLD)) WHERE key = ANY(TG_ARGV);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        SELECT jsonb_object_agg(key, value) INTO new_doc
        FROM jsonb_each(to_jsonb(NEW)) WHERE key = ANY(TG_ARGV);
    END IF;
    IF TG_OP = 'UPDATE' AND old_doc IS NOT DISTINCT FROM new_doc THEN
        RETURN NULL;
    END IF;
    BEGIN
        chain_depth := coalesce(nullif(current_setting('apptflow.depth', true), ''), '0')::integer;
        INSERT INTO {schema}.change_events (table_name, row_id, op, old, new, depth)
        VALUES (TG_TABLE_NAME,
                CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END,
                TG_OP, old_doc, new_doc, chain_depth);
        PERFORM pg_notify('{NOTIFY_CHANNEL}', TG_TABLE_NAME);
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'apptflow could not capture % on %: % (SQLSTATE %)', TG_OP, TG_TABLE_NAME, SQLERRM, SQLSTATE;
        BEGIN
            INSERT INTO {schema}.capture_errors (table_name, op, row_doc, error)
            VALUES (TG_TABLE_NAME, TG_OP, coalesce(new_doc, old_doc), SQLERRM || ' (SQLSTATE ' || SQLSTATE || ')');
        EXCEPTION WHEN OTHERS THEN
            NULL;  -- apptflow's tables are unusable: the warning above is all that can be left
        END;
    END;
    RETURN NULL;
END;
$$
"""


def _pg_statements(schema: str, watch: Watch) -> list[str]:
    args = ", ".join(f"'{column}'" for column in watch.watched)
    name = f"apptflow_capture_{watch.table}"
    return [
        f"DROP TRIGGER IF EXISTS {name} ON {watch.table}",
        f"CREATE TRIGGER {name} AFTER INSERT OR UPDATE OR DELETE ON {watch.table} "
        f"FOR EACH ROW EXECUTE FUNCTION {schema}.apptflow_capture({args})",
    ]


def _sqlite_doc(row: str, columns: tuple[str, ...]) -> str:
    pairs = ", ".join(f"'{column}', {row}.{column}" for column in columns)
    return f"json_object({pairs})"


def _sqlite_statements(watch: Watch) -> list[str]:
    recorded = watch.recorded_sqlite or watch.watched
    table = watch.table
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in watch.watched)
    insert = (
        "INSERT INTO change_events (table_name, row_id, op, old, new) "
        f"VALUES ('{table}', {{row}}.id, '{{op}}', {{old}}, {{new}});"
    )
    bodies = {
        "insert": ("AFTER INSERT", "", insert.format(
            row="NEW", op="INSERT", old="NULL", new=_sqlite_doc("NEW", recorded))),
        "update": (f"AFTER UPDATE OF {', '.join(watch.watched)}", f"WHEN {changed}", insert.format(
            row="NEW", op="UPDATE", old=_sqlite_doc("OLD", recorded), new=_sqlite_doc("NEW", recorded))),
        "delete": ("AFTER DELETE", "", insert.format(
            row="OLD", op="DELETE", old=_sqlite_doc("OLD", recorded), new="NULL")),
    }
    statements = []
    for op, (timing, when, body) in bodies.items():
        name = f"apptflow_capture_{table}_{op}"
        statements.append(f"DROP TRIGGER IF EXISTS {name}")
        statements.append(
            f"CREATE TRIGGER {name} {timing} ON {table} FOR EACH ROW {when} BEGIN {body} END"
        )
    return statements


def _mysql_doc(row: str, columns: tuple[str, ...]) -> str:
    pairs = ", ".join(f"'{column}', {row}.`{column}`" for column in columns)
    return f"JSON_OBJECT({pairs})"


def _install_mysql(conn: Connection, watch: Watch) -> None:
    """One trigger per operation, opening with the handler that records an error instead of raising it."""
    table = own_table(conn, watch.table) if watch.table not in BOOKING_WATCHED else watch.table
    events, errors = own_table(conn, "change_events"), own_table(conn, "capture_errors")
    # byte for byte: the server's default collation would take 'en_us' → 'en_US' for no change
    changed = " OR ".join(f"NOT (CAST(OLD.`{c}` AS BINARY) <=> CAST(NEW.`{c}` AS BINARY))" for c in watch.watched)
    bodies = {
        "INSERT": ("TRUE", "NEW", "NULL", _mysql_doc("NEW", watch.watched)),
        "UPDATE": (changed, "NEW", _mysql_doc("OLD", watch.watched), _mysql_doc("NEW", watch.watched)),
        "DELETE": ("TRUE", "OLD", _mysql_doc("OLD", watch.watched), "NULL"),
    }
    for op, (when, row, old, new) in bodies.items():
        replace_trigger(conn, f"{own_prefix(conn)}capture_{watch.table}_{op.lower()}", op, table, f"""BEGIN
    {error_handler(errors, watch.table, op)}
    IF {when} THEN
        INSERT INTO `{events}` (table_name, row_id, op, old, new, depth, created_at)
        VALUES ('{watch.table}', {row}.id, '{op}', {old}, {new}, COALESCE(@apptflow_depth, 0), UTC_TIMESTAMP(6));
    END IF;
END""")


def install_triggers(conn: Connection, *, booking: bool = True) -> None:
    """(Re)install the change-capture triggers for the connection's dialect: on the workflow tables, and on
    the reference booking tables unless *booking* is false (a mapping captures the application's own)."""
    watches = [w for w in WATCHES if booking or w.table not in BOOKING_WATCHED]
    if conn.dialect.name == "postgresql":
        schema = own_schema(conn)
        conn.execute(text(_pg_function(schema)))
        statements = [s for w in watches for s in _pg_statements(schema, w)]
    elif conn.dialect.name == "sqlite":
        statements = [s for w in watches for s in _sqlite_statements(w)]
    elif conn.dialect.name == "mysql":
        for watch in watches:
            _install_mysql(conn, watch)
        return
    else:
        raise NotImplementedError(f"change capture is not available on {conn.dialect.name}")
    for statement in statements:
        conn.exec_driver_sql(statement)


def capture_triggers(conn: Connection) -> list[str]:
    """The names of apptflow's capture triggers in a SQLite or MySQL/MariaDB database (PostgreSQL's are
    found by the function they call: see :func:`db.schema.uninstall`)."""
    if conn.dialect.name == "mysql":
        pattern = own_prefix(conn).replace("_", "\\_") + "capture\\_%"
        query = ("SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE() "
                 "AND trigger_name LIKE :pattern ORDER BY trigger_name")
    else:
        pattern = "apptflow\\_capture\\_%"
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE :pattern ESCAPE '\\' ORDER BY name"
    return list(conn.execute(text(query), {"pattern": pattern}).scalars())
