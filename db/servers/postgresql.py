"""PostgreSQL: several instances, apptflow's tables in a schema of their own, notifications.

Capture is a PL/pgSQL function that also ``pg_notify``-s :data:`NOTIFY_CHANNEL`,
so a listening daemon wakes at once; leadership is an advisory lock; a
set_status chain's depth is a transaction-local setting the function reads.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import zlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, DateTime, Text, any_, create_engine, event, literal, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine, URL
from sqlalchemy.sql import ColumnElement
from sqlalchemy.types import Date, TypeEngine

from db.options import APPLICATION_SCHEMA, SCHEMA_OPTION, TIMEOUTS_OPTION, Timeouts, own_schema
from db.servers.base import Server

if TYPE_CHECKING:
    from sqlalchemy import Table

    from db.capture import Watch

NOTIFY_CHANNEL = "apptflow_events"


class PostgreSQL(Server):
    label = "PostgreSQL"
    names = ("postgresql",)
    driver = "postgresql+psycopg"
    update_returning = True
    notify = True
    shared = True
    schemas = True
    table_prefix = False
    comparable_times = True
    depth_in_session = True
    mapping_installer = "db.pg_mapping"

    def engine(self, url: URL, *, schema: str, prefix: str, busy_timeout: float, timeouts: Timeouts,
               **engine_options) -> Engine:
        """psycopg 3; every connection's ``search_path`` is *schema* (apptflow's tables, a mapping's views)
        then ``public`` (the application's tables), so that queries name tables unqualified; keepalives on
        both ends and, with a statement timeout, a bounded wait for every answer (see Timeouts)."""
        # connect_timeout: a server that accepts but never answers must not hang a thread forever.
        # No pre-ping: it costs a round trip on every checkout, a third of a short transaction. A
        # connection the server dropped fails its next statement instead, SQLAlchemy then discards
        # every connection of the pool made before, and the daemon's loops retry.
        options = {**engine_options.pop("execution_options", {}), SCHEMA_OPTION: schema, TIMEOUTS_OPTION: timeouts}
        settings = {"search_path": f"{schema},{APPLICATION_SCHEMA}", **_server_keepalive(timeouts)}
        if timeouts.statement is not None:
            settings["statement_timeout"] = int(timeouts.statement * 1000)
        server_options = " ".join(f"-c {name}={value}" for name, value in settings.items())
        engine = create_engine(url, connect_args={"connect_timeout": 10, "options": server_options,
                                                  **_client_keepalive(timeouts)},
                               execution_options=options, **engine_options)
        if timeouts.answer_within is not None and _bounded_wait():
            connection_class = _answering_within(timeouts.answer_within)

            @event.listens_for(engine, "do_connect")
            def _connect(_dialect, _record, cargs, cparams):
                return connection_class.connect(*cargs, **cparams)

        return engine

    def time_column(self) -> TypeEngine:
        return DateTime(timezone=True)

    def store_time(self, value: dt.datetime) -> Any:
        return value

    def date_column(self) -> TypeEngine:
        return Date()

    def store_date(self, value: Any) -> Any:
        return value

    def insert_new(self, conn: Connection, table: Table, rows: list[dict[str, Any]], key: str) -> int:
        """``ON CONFLICT DO NOTHING ... RETURNING``: only the new rows come back."""
        statement = postgresql.insert(table).on_conflict_do_nothing(index_elements=[key]).returning(table.c.id)
        return len(conn.execute(statement, rows).all())

    def install_capture(self, conn: Connection, watches: list[Watch]) -> None:
        schema = own_schema(conn)
        conn.execute(text(_capture_function(schema)))
        for statement in (s for watch in watches for s in _trigger_statements(schema, watch)):
            conn.exec_driver_sql(statement)

    def capture_triggers(self, conn: Connection) -> list[str]:
        """Every trigger calling a function of apptflow's schema (the capture's and a mapping's)."""
        return [name for name, _ in _own_triggers(conn)]

    def stamp_depth(self, conn: Connection, depth: int) -> None:
        conn.execute(text("SELECT set_config('apptflow.depth', :depth, true)"), {"depth": str(depth)})

    def unstamp_depth(self, conn: Connection) -> None:
        """Nothing to do: the setting ends with the transaction."""

    def notify_consumer(self, conn: Connection, table_name: str) -> None:
        conn.execute(text("SELECT pg_notify(:channel, :table)"), {"channel": NOTIFY_CHANNEL, "table": table_name})

    def listen(self, url: URL, timeouts: Timeouts | None = None):
        """A psycopg connection (autocommit) subscribed to :data:`NOTIFY_CHANNEL`: keepalives, so that a
        dead peer ends its wait, but no statement timeout nor bounded answer (it waits, idle, for
        notifications as long as there are none)."""
        import psycopg

        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        keepalive = _client_keepalive(timeouts) if timeouts is not None else {}
        listener = psycopg.connect(conninfo, autocommit=True, connect_timeout=5, **keepalive)
        try:
            listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except BaseException:
            listener.close()
            raise
        return listener

    def drop_installed(self, conn: Connection) -> list[str]:
        """The triggers apptflow's functions serve on the application's tables, then apptflow's schema whole
        (its tables, the capture function, a mapping's views)."""
        schema, removed = own_schema(conn), []
        for name, table in _own_triggers(conn):
            conn.exec_driver_sql(f'DROP TRIGGER "{name}" ON {table}')
            removed.append(f"trigger {name} on {table}")
        if conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": schema}).first():
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            removed.append(f"schema {schema} with apptflow's tables and functions")
        return removed

    def among(self, column: ColumnElement, values: Sequence[Any]) -> ColumnElement:
        """``= ANY(array)``: one statement text whatever the number of values, which psycopg prepares once
        it has run a few times (a growing ``IN`` list is parsed and planned anew each time)."""
        values = list(values)
        kind = Text() if values and isinstance(values[0], str) else BigInteger()
        return column == any_(literal(values, ARRAY(kind)))

    def try_lock(self, conn: Connection, kind: str, number: int) -> bool:
        return bool(conn.execute(text("SELECT pg_try_advisory_lock(:class, :number)"),
                                 {"class": _lock_class(conn, kind), "number": number}).scalar())

    def held(self, conn: Connection, kind: str, numbers: Iterable[int]) -> set[int]:
        found = conn.execute(text(
            "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
            "AND granted AND classid = :class AND objsubid = 2"), {"class": _lock_class(conn, kind)}).scalars()
        return set(found) & set(numbers)

    def taken(self, conn: Connection, kind: str, numbers: Iterable[int]) -> set[int]:
        found = conn.execute(text(
            "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = :class "
            "AND objsubid = 2 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
            {"class": _lock_class(conn, kind)}).scalars()
        return set(found) & set(numbers)

    def unlock(self, conn: Connection, kind: str, number: int) -> None:
        conn.execute(text("SELECT pg_advisory_unlock(:class, :number)"),
                     {"class": _lock_class(conn, kind), "number": number})


def _lock_class(conn: Connection, kind: str) -> int:
    """The first of an advisory lock's two 32-bit keys (the second is the number): the kind and the
    installation, i.e. apptflow's schema, since advisory locks are the database's and two installations
    may share one database. Non-negative, so that ``pg_locks.classid`` (an oid) reads the same number."""
    return zlib.crc32(f"apptflow {kind} {own_schema(conn)}".encode()) & 0x7FFFFFFF


def _client_keepalive(timeouts: Timeouts) -> dict[str, int]:
    """libpq's keepalives, and its user timeout for data sent but unacknowledged: a dead peer is found
    within the timeouts' dead_peer even while a statement waits for its answer."""
    idle, interval, count = timeouts.keepalive()
    return {"keepalives": 1, "keepalives_idle": idle, "keepalives_interval": interval,
            "keepalives_count": count, "tcp_user_timeout": int(timeouts.dead_peer * 1000)}


def _server_keepalive(timeouts: Timeouts) -> dict[str, int]:
    """The server's side of the same: the session of a client gone (and the locks it holds) ends as soon."""
    idle, interval, count = timeouts.keepalive()
    return {"tcp_keepalives_idle": idle, "tcp_keepalives_interval": interval, "tcp_keepalives_count": count}


@functools.cache
def _bounded_wait() -> bool:
    """Whether this psycopg's connections can bound their wait for an answer (``wait(timeout=)``)."""
    import psycopg

    return "timeout" in inspect.signature(psycopg.Connection.wait).parameters


@functools.lru_cache(maxsize=None)
def _answering_within(seconds: float) -> type:
    """A psycopg connection class whose every wait for the server ends after *seconds*.

    Keepalives cannot see a peer whose network still acknowledges packets (a proxy or a
    bouncer in front of a server that is gone): there, only the wait's own bound ends it.
    The connection is then closed, as a broken one, so that SQLAlchemy discards it (and
    the pool's older ones) and the daemon's loops try again on a new one.
    """
    import psycopg

    class AnsweringConnection(psycopg.Connection):
        def wait(self, gen, *args, **kwargs):
            if len(args) < 2 and "timeout" not in kwargs:
                kwargs["timeout"] = seconds
            try:
                return super().wait(gen, *args, **kwargs)
            except psycopg.OperationalError as error:
                if type(error).__name__ != "_WaitTimeout":  # psycopg's own, for a wait that ran out
                    raise
                self.close()
                raise psycopg.OperationalError(
                    f"no answer from the database server within {seconds:g}s; connection given up") from None

    return AnsweringConnection


def _own_triggers(conn: Connection) -> list[tuple[str, str]]:
    """(name, table) of every trigger calling a function in apptflow's schema."""
    return [tuple(row) for row in conn.execute(text(
        "SELECT t.tgname, t.tgrelid::regclass::text FROM pg_trigger t "
        "JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = :schema AND NOT t.tgisinternal ORDER BY 2, 1"), {"schema": own_schema(conn)}).all()]


def _capture_function(schema: str) -> str:
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


def _trigger_statements(schema: str, watch: Watch) -> list[str]:
    args = ", ".join(f"'{column}'" for column in watch.watched)
    name = f"apptflow_capture_{watch.table}"
    return [
        f"DROP TRIGGER IF EXISTS {name} ON {watch.table}",
        f"CREATE TRIGGER {name} AFTER INSERT OR UPDATE OR DELETE ON {watch.table} "
        f"FOR EACH ROW EXECUTE FUNCTION {schema}.apptflow_capture({args})",
    ]


SERVER = PostgreSQL()
