"""Create and migrate apptflow's schema; both are idempotent.

A database without an Alembic revision gets every missing table from the
current :data:`db.tables.metadata` (booking tables the application already
created are left as they are) and is stamped at the newest revision. A
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
from sqlalchemy.engine import Connection, Engine

from db.capture import install_triggers
from db.tables import metadata

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


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Install or migrate the schema and (re)install triggers; return (revision before, after)."""
    with engine.begin() as conn:
        before = current_revision(conn)
        config = _alembic_config(conn)
        if before is None:
            metadata.create_all(conn)
            command.stamp(config, "head")
        else:
            command.upgrade(config, "head")
            metadata.create_all(conn)
        install_triggers(conn)
        return before, current_revision(conn)
