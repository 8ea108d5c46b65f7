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
from db.tables import BOOKING_TABLES, metadata

MIGRATIONS = Path(__file__).with_name("migrations")


def _alembic_config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def current_revision(conn: Connection) -> str | None:
    """The schema revision the database is at, or None if apptflow never installed it."""
    return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest schema revision this version of apptflow knows."""
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def _complete_booking_tables(conn: Connection) -> None:
    """Add the reference columns a booking table created by the application lacks (all are nullable or
    have a default), so that a first ``db init`` over an older reference schema leaves it whole."""
    inspector = inspect(conn)
    for table in BOOKING_TABLES:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.c:
            if column.name not in present:
                kind = column.type.compile(dialect=conn.dialect)
                conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'
                                  f'{_constant_default(column)}'))


def _constant_default(column) -> str:
    """`` DEFAULT …`` for a column whose server default is a constant (SQLite adds no other), else ''."""
    arg = getattr(column.server_default, "arg", None)
    if isinstance(arg, str):
        return " DEFAULT '" + arg.replace("'", "''") + "'"
    if hasattr(arg, "text"):  # text("1")
        return f" DEFAULT {arg.text}"
    return ""


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Install or migrate the schema and (re)install triggers; return (revision before, after)."""
    with engine.begin() as conn:
        before = current_revision(conn)
        config = _alembic_config(conn)
        if before is None:
            metadata.create_all(conn)
            _complete_booking_tables(conn)
            command.stamp(config, "head")
        else:
            command.upgrade(config, "head")
            metadata.create_all(conn)
        install_triggers(conn)
        return before, current_revision(conn)
