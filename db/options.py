"""Where apptflow's own tables are, as options every engine and connection carries.

On PostgreSQL apptflow's tables live in a schema of their own; on MySQL/MariaDB
they are named with a prefix beside the application's; SQLite has one
namespace. :func:`db.connect.connect` sets the option of the engine's server,
and hand-written SQL asks these functions, never the server's name.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection, Engine

READ_ONLY = "apptflow_read_only"
# PostgreSQL: the schema of apptflow's own tables, apart from the application's (``public``).
DEFAULT_SCHEMA = "apptflow"
APPLICATION_SCHEMA = "public"
SCHEMA_OPTION = "apptflow_schema"
# MySQL/MariaDB have no schemas a WordPress host lets one create: apptflow's tables get a prefix instead.
DEFAULT_PREFIX = "apptflow_"
PREFIX_OPTION = "apptflow_prefix"
# The Timeouts an engine's connections were set up with (PostgreSQL's LISTEN connection takes them too).
TIMEOUTS_OPTION = "apptflow_timeouts"


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """How long a connection may go unanswered, and a statement run, before apptflow gives them up.

    *dead_peer* (seconds): a server that stops answering at the network level (a partition, a host
    gone, packets dropped without a reset) is detected within it by TCP keepalives and, for data
    sent, a user timeout. *statement* (seconds, or None): the server cancels a statement running
    longer, and the client stops waiting for an answer after *statement* + *dead_peer* (what a
    network that still acknowledges packets, such as a proxy to a dead server, needs). None for
    commands whose statements may legitimately run long (``db init``).
    """

    dead_peer: float = 30.0
    statement: float | None = None

    @property
    def answer_within(self) -> float | None:
        """How long the client waits for any one answer; None: as long as it takes."""
        return None if self.statement is None else self.statement + self.dead_peer

    def keepalive(self) -> tuple[int, int, int]:
        """(idle, interval, count) in whole seconds: idle + interval × count ≤ dead_peer."""
        idle = max(1, int(self.dead_peer // 3))
        interval = max(1, int(self.dead_peer // 6))
        return idle, interval, max(1, int((self.dead_peer - idle) // interval))


def own_schema(bind: Engine | Connection) -> str | None:
    """The schema apptflow's own tables live in; None where they share the application's namespace."""
    return bind.get_execution_options().get(SCHEMA_OPTION)


def own_prefix(bind: Engine | Connection) -> str | None:
    """The prefix of apptflow's own table names (MySQL/MariaDB); None elsewhere."""
    return bind.get_execution_options().get(PREFIX_OPTION)


def own_table(bind: Engine | Connection, name: str) -> str:
    """The name *name*, one of apptflow's own tables, has in the database, for SQL written by hand."""
    return f"{own_prefix(bind) or ''}{name}"


def read_only(engine: Engine) -> Connection:
    """A connection for reading only: on SQLite its transactions do not take the write lock."""
    return engine.connect().execution_options(**{READ_ONLY: True})
