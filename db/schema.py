"""Create and migrate apptflow's schema; both are idempotent.

A database without an Alembic revision gets every missing table from the
current :data:`db.tables.metadata` (booking tables the application already
created keep their rows and get the reference columns they lack) and is
stamped at the newest revision. A
database with a revision is brought up to date by the migrations in
``db/migrations/versions``. Either way the change-capture triggers are
reinstalled at the end.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from db.capture import install_triggers
from db.connect import APPLICATION_SCHEMA, own_schema, own_table
from db.mapping import Mapping, MappingError, installed
from db.mapping import install as install_mapping
from db.servers import server_for
from db.tables import BOOKING_TABLES, metadata

MIGRATIONS = Path(__file__).with_name("migrations")


def _alembic_config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    config.attributes["schema"] = own_schema(conn)
    return config


def current_revision(conn: Connection) -> str | None:
    """The schema revision the database is at, or None if apptflow never installed it."""
    return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest schema revision this version of apptflow knows."""
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def _create_booking_tables(conn: Connection) -> None:
    """Create the reference booking tables that do not exist, in the application's schema on a server where
    apptflow has one of its own (which comes first in the search path, and holds apptflow's tables only)."""
    if not server_for(conn).schemas:
        return
    conn.execution_options(schema_translate_map={None: APPLICATION_SCHEMA})
    try:
        metadata.create_all(conn, tables=BOOKING_TABLES)
    finally:
        conn.execution_options(schema_translate_map=None)


def _complete_booking_tables(conn: Connection) -> None:
    """Add the reference columns a booking table created by the application lacks (all are nullable or
    have a default), so that a first ``db init`` over an older reference schema leaves it whole."""
    inspector = inspect(conn)
    for table in BOOKING_TABLES:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.c:
            if column.name not in present:
                kind = column.type.compile(dialect=conn.dialect)
                quote = conn.dialect.identifier_preparer.quote
                conn.execute(text(f'ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}'
                                  f'{_constant_default(column)}'))


def _constant_default(column) -> str:
    """`` DEFAULT …`` for a column whose server default is a constant (SQLite adds no other), else ''."""
    arg = getattr(column.server_default, "arg", None)
    if isinstance(arg, str):
        return " DEFAULT '" + arg.replace("'", "''") + "'"
    if hasattr(arg, "text"):  # text("1")
        return f" DEFAULT {arg.text}"
    return ""


def upgrade(engine: Engine, mapping: Mapping | None = None) -> tuple[str | None, str]:
    """Install or migrate the schema and (re)install change capture; return (revision before, after).

    Without *mapping*, apptflow reads its reference booking tables (created when
    missing); with one, the application's own tables through the mapping's views.
    """
    with engine.begin() as conn:
        schema, server = own_schema(conn), server_for(conn)
        if mapping is not None and server.mapping_installer is None:
            raise MappingError(mapping.name, [f"mappings need PostgreSQL or MySQL/MariaDB: on {server.label} apptflow "
                                              "reads its reference tables"])
        if schema is not None:
            conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        before = current_revision(conn)
        config = _alembic_config(conn)
        own = [table for table in metadata.sorted_tables if table not in BOOKING_TABLES]
        if before is None:
            if mapping is None:
                _create_booking_tables(conn)
            metadata.create_all(conn, tables=own if mapping else None)
            if mapping is None:
                _complete_booking_tables(conn)
            command.stamp(config, "head")
        else:
            command.upgrade(config, "head")
            metadata.create_all(conn, tables=own if mapping else None)
        previous = installed(conn)
        if previous is not None and mapping is None:
            raise MappingError(previous.name, [f"the database is installed with mapping {previous.name}: set "
                                               "[database] mapping to it (or uninstall apptflow first)"])
        install_triggers(conn, booking=mapping is None)
        if mapping is not None:
            install_mapping(conn, mapping)
        return before, current_revision(conn)


def uninstall(engine: Engine) -> list[str]:
    """Remove every trigger, function and table apptflow added, in one transaction (MySQL commits each DROP
    by itself); return what went.

    The booking tables and their rows stay, even those ``db init`` created: they
    hold the business's data. On PostgreSQL apptflow's schema goes whole (its
    tables, the capture function, a mapping's views), after the triggers it put
    on the application's tables; on MySQL/MariaDB a mapping's views and routines
    go first, then the triggers and the tables, each by the name apptflow gave it.
    """
    with engine.begin() as conn:
        server = server_for(conn)
        removed = server.drop_installed(conn)
        if server.schemas:
            return removed
        present = set(inspect(conn).get_table_names())
        for table in [*reversed(metadata.sorted_tables), "alembic_version"]:
            name = getattr(table, "name", table)
            if own_table(conn, name) in present and table not in BOOKING_TABLES:
                conn.exec_driver_sql(f"DROP TABLE {conn.dialect.identifier_preparer.quote(name)}")
                removed.append(f"table {own_table(conn, name)}")
    return removed
