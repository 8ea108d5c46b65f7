"""Where apptflow's own tables are, as options every engine and connection carries.

On PostgreSQL apptflow's tables live in a schema of their own; on MySQL/MariaDB
they are named with a prefix beside the application's; SQLite has one
namespace. :func:`db.connect.connect` sets the option of the engine's server,
and hand-written SQL asks these functions, never the server's name.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection, Engine

READ_ONLY = "apptflow_read_only"
# PostgreSQL: the schema of apptflow's own tables, apart from the application's (``public``).
DEFAULT_SCHEMA = "apptflow"
APPLICATION_SCHEMA = "public"
SCHEMA_OPTION = "apptflow_schema"
# MySQL/MariaDB have no schemas a WordPress host lets one create: apptflow's tables get a prefix instead.
DEFAULT_PREFIX = "apptflow_"
PREFIX_OPTION = "apptflow_prefix"


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
