"""MySQL and MariaDB: several instances, apptflow's tables under a prefix, no notifications.

Every session is in UTC (the time columns hold UTC without a zone), capture
triggers record an error in ``capture_errors`` instead of failing the writer's
statement, leadership is a named lock, a set_status chain's depth a session
variable. MySQL has no UPDATE ... RETURNING and no ON CONFLICT: INSERT IGNORE.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.dialects.mysql import DATETIME
from sqlalchemy.engine import Connection, Engine, URL
from sqlalchemy.types import Date, TypeEngine

from db.mysql_triggers import error_handler, replace_trigger
from db.options import PREFIX_OPTION, TIMEOUTS_OPTION, Timeouts, own_prefix, own_table
from db.servers.base import Server, UnsupportedServer, drop_triggers

if TYPE_CHECKING:
    from sqlalchemy import Table

    from db.capture import Watch

# The oldest servers with what apptflow uses: FOR UPDATE SKIP LOCKED for the queues (MySQL 8.0.1, MariaDB
# 10.6), expressions as column defaults (MySQL 8.0.13) and CAST(... AS DOUBLE) in the Booknetic mapping (8.0.17).
MYSQL_MINIMUM, MARIADB_MINIMUM = (8, 0, 17), (10, 6)


class MySQL(Server):
    label = "MySQL/MariaDB"
    names = ("mysql", "mariadb")
    driver = "mysql+pymysql"
    update_returning = False
    notify = False
    shared = True
    schemas = False
    table_prefix = True
    comparable_times = True
    depth_in_session = True
    # No notification of a change: the daemon finds it by polling, so the default poll is short enough
    # that an event waits a fifth of a second at most; an idle poll is one indexed query.
    default_poll_interval = "200ms"
    mapping_installer = "db.mysql_mapping"

    def engine(self, url: URL, *, schema: str, prefix: str, busy_timeout: float, timeouts: Timeouts,
               **engine_options) -> Engine:
        """PyMySQL; every session in UTC (the time columns hold UTC), utf8mb4, READ COMMITTED (a queue's
        claims must not take REPEATABLE READ's gap locks); keepalives and, with a statement timeout, a
        bounded wait for every answer (see Timeouts); a server too old is refused at first connect."""
        options = {**engine_options.pop("execution_options", {}), PREFIX_OPTION: prefix, TIMEOUTS_OPTION: timeouts}
        engine_options.setdefault("isolation_level", "READ COMMITTED")
        # The pool recycles connections before the server's wait_timeout (8 h by default) ends them.
        engine_options.setdefault("pool_recycle", 3600)
        # No ROLLBACK as a connection goes back to the pool: every use goes through a SQLAlchemy Connection,
        # whose close already ended its transaction, and PyMySQL would send the redundant one every time (a
        # third of an idle daemon's statements).
        engine_options.setdefault("pool_reset_on_return", None)
        connect_args = {"connect_timeout": 10, "init_command": "SET time_zone = '+00:00'"}
        if timeouts.answer_within is not None:  # PyMySQL's socket timeouts: a read or write that waits longer fails
            connect_args.update(read_timeout=timeouts.answer_within, write_timeout=timeouts.answer_within)
        engine = create_engine(url.update_query_dict({"charset": "utf8mb4"}), connect_args=connect_args,
                               execution_options=options, **engine_options)
        statement_timeout: list[str] = []  # the session setting, once the first connection told MySQL from MariaDB

        @event.listens_for(engine, "first_connect")
        def _check_version(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT VERSION()")
            version = cursor.fetchone()[0]
            cursor.close()
            check_mysql_version(version)
            if timeouts.statement is not None:
                statement_timeout.append(_statement_timeout(version, timeouts.statement))

        @event.listens_for(engine, "connect")
        def _set_up(dbapi_connection, _record):
            _keep_alive(dbapi_connection, timeouts)
            if statement_timeout:
                cursor = dbapi_connection.cursor()
                cursor.execute(statement_timeout[0])
                cursor.close()

        return engine

    def time_column(self) -> TypeEngine:
        return DATETIME(fsp=6)

    def store_time(self, value: dt.datetime) -> Any:
        return value.replace(tzinfo=None)

    def date_column(self) -> TypeEngine:
        return Date()

    def store_date(self, value: Any) -> Any:
        return value

    def insert_new(self, conn: Connection, table: Table, rows: list[dict[str, Any]], key: str) -> int:
        """INSERT IGNORE skips a duplicate key and counts only the rows it inserted. It would also turn bad
        data into a warning: use it for apptflow's own rows only."""
        return conn.execute(insert(table).prefix_with("IGNORE"), rows).rowcount

    def install_capture(self, conn: Connection, watches: list[Watch]) -> None:
        for watch in watches:
            _install_watch(conn, watch)

    def capture_triggers(self, conn: Connection) -> list[str]:
        pattern = own_prefix(conn).replace("_", "\\_") + "capture\\_%"
        return list(conn.execute(text(
            "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE() "
            "AND trigger_name LIKE :pattern ORDER BY trigger_name"), {"pattern": pattern}).scalars())

    def stamp_depth(self, conn: Connection, depth: int) -> None:
        """A session variable, which :meth:`unstamp_depth` must clear after the write."""
        conn.execute(text("SET @apptflow_depth = :depth"), {"depth": depth})

    def unstamp_depth(self, conn: Connection) -> None:
        conn.exec_driver_sql("SET @apptflow_depth = NULL")

    def drop_installed(self, conn: Connection) -> list[str]:
        """A mapping's views and routines, then the capture triggers, each by the name apptflow gave it."""
        removed = self.installer().uninstall(conn)
        return removed + drop_triggers(conn, self.capture_triggers(conn))

    def try_lock(self, conn: Connection, kind: str, number: int) -> bool:
        return conn.execute(text("SELECT GET_LOCK(:name, 0)"), {"name": _lock_name(conn, kind, number)}).scalar() == 1

    def held(self, conn: Connection, kind: str, numbers: Iterable[int]) -> set[int]:
        return self._holders(conn, kind, numbers, "IS_USED_LOCK({}) = CONNECTION_ID()")

    def taken(self, conn: Connection, kind: str, numbers: Iterable[int]) -> set[int]:
        return self._holders(conn, kind, numbers, "IS_USED_LOCK({}) IS NOT NULL")

    @staticmethod
    def _holders(conn: Connection, kind: str, numbers: Iterable[int], test: str) -> set[int]:
        numbers = sorted(set(numbers))
        if not numbers:
            conn.exec_driver_sql("SELECT 1").scalar()  # still a round trip: it fails if the session is gone
            return set()
        tests = ", ".join(test.format(f":n{i}") for i in range(len(numbers)))
        row = conn.execute(text(f"SELECT {tests}"),
                           {f"n{i}": _lock_name(conn, kind, n) for i, n in enumerate(numbers)}).one()
        return {n for n, yes in zip(numbers, row) if yes}

    def unlock(self, conn: Connection, kind: str, number: int) -> None:
        conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": _lock_name(conn, kind, number)})


def check_mysql_version(version: str) -> None:
    """Refuse a server older than MySQL 8.0.17 or MariaDB 10.6 (see MYSQL_MINIMUM)."""
    numbers = tuple(int(part) for part in version.split("-")[0].split(".")[:3] if part.isdigit())
    mariadb = "mariadb" in version.lower()
    minimum = MARIADB_MINIMUM if mariadb else MYSQL_MINIMUM
    if numbers < minimum:
        name = "MariaDB" if mariadb else "MySQL"
        raise UnsupportedServer(f"{name} {version} is too old for apptflow: it needs {name} "
                                f"{'.'.join(map(str, minimum))} or newer")


def _statement_timeout(version: str, seconds: float) -> str:
    """The session setting that makes the server end a statement running longer than *seconds*: MariaDB's
    ``max_statement_time``; MySQL's ``max_execution_time`` (its SELECTs only) and the InnoDB lock wait."""
    if "mariadb" in version.lower():
        return f"SET SESSION max_statement_time = {seconds:g}"
    return (f"SET SESSION max_execution_time = {int(seconds * 1000)}, "
            f"innodb_lock_wait_timeout = {max(1, int(seconds))}")


def _keep_alive(dbapi_connection, timeouts: Timeouts) -> None:
    """TCP keepalives within the timeouts' dead_peer on PyMySQL's socket (PyMySQL turns them on with the
    system's timings, two hours by default, and has no option for them: its socket is set directly)."""
    sock = getattr(dbapi_connection, "_sock", None)
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # a Unix socket has no peer to lose
    idle, interval, count = timeouts.keepalive()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval), ("TCP_KEEPCNT", count),
                          ("TCP_USER_TIMEOUT", int(timeouts.dead_peer * 1000))):
        if hasattr(socket, option):  # Linux names; elsewhere the system's timings stay
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def _lock_name(conn: Connection, kind: str, number: int) -> str:
    """A named lock is the server's, not the database's: the name says which installation it is of (a hash
    of the database and the prefix, since a lock's name has 64 characters at most)."""
    database = conn.exec_driver_sql("SELECT DATABASE()").scalar()
    installation = hashlib.sha256(f"{database}\0{own_prefix(conn)}".encode()).hexdigest()[:40]
    return f"apptflow {kind[0]}{number} {installation}"


def _doc(row: str, columns: tuple[str, ...]) -> str:
    pairs = ", ".join(f"'{column}', {row}.`{column}`" for column in columns)
    return f"JSON_OBJECT({pairs})"


def _install_watch(conn: Connection, watch: Watch) -> None:
    """One trigger per operation, opening with the handler that records an error instead of raising it."""
    table = watch.table if watch.booking else own_table(conn, watch.table)
    events, errors = own_table(conn, "change_events"), own_table(conn, "capture_errors")
    # byte for byte: the server's default collation would take 'en_us' → 'en_US' for no change
    changed = " OR ".join(f"NOT (CAST(OLD.`{c}` AS BINARY) <=> CAST(NEW.`{c}` AS BINARY))" for c in watch.watched)
    bodies = {
        "INSERT": ("TRUE", "NEW", "NULL", _doc("NEW", watch.watched)),
        "UPDATE": (changed, "NEW", _doc("OLD", watch.watched), _doc("NEW", watch.watched)),
        "DELETE": ("TRUE", "OLD", _doc("OLD", watch.watched), "NULL"),
    }
    for op, (when, row, old, new) in bodies.items():
        replace_trigger(conn, f"{own_prefix(conn)}capture_{watch.table}_{op.lower()}", op, table, f"""BEGIN
    {error_handler(errors, watch.table, op)}
    IF {when} THEN
        INSERT INTO `{events}` (table_name, row_id, op, old, new, depth, created_at)
        VALUES ('{watch.table}', {row}.id, '{op}', {old}, {new}, COALESCE(@apptflow_depth, 0), UTC_TIMESTAMP(6));
    END IF;
END""")


SERVER = MySQL()
