"""apptflow's own tables in a schema of their own, apart from the application's; capture errors; mappings.

On PostgreSQL, a database installed before this revision has every table in
``public``: apptflow's tables (workflows, the outbox, change events, jobs and
this version table) move to the configured schema (``apptflow`` by default),
which ``db upgrade`` creates first, and the capture function that lived in
``public`` is dropped (the triggers are reinstalled right after, calling the
one in apptflow's schema). The booking tables stay where they are. Moving a
table keeps its rows, sequences, indexes and triggers. SQLite has one
namespace: only the new tables are created there (``capture_errors``, and
``booking_mapping`` and ``capture_snapshots``, which only a mapping on
PostgreSQL fills).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import context, op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# apptflow's own tables at revision 0002; the version table last, once the others are moved.
OWN_TABLES = ("workflows", "workflow_actions", "change_events", "deliveries", "instances", "apscheduler_jobs",
              "apscheduler_failed_jobs", "alembic_version")


def _tables_in(bind, schema: str) -> set[str]:
    return set(sa.inspect(bind).get_table_names(schema=schema))


def _move(source: str, target: str) -> None:
    bind = op.get_bind()
    present, taken = _tables_in(bind, source), _tables_in(bind, target)
    for name in OWN_TABLES:
        if name in present and name not in taken:
            op.execute(f'ALTER TABLE {source}."{name}" SET SCHEMA {target}')


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        schema = context.config.attributes["schema"]
        _move("public", schema)
        op.execute("DROP FUNCTION IF EXISTS public.apptflow_capture() CASCADE")
    present = set(sa.inspect(bind).get_table_names())
    json = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
    sqlite = bind.dialect.name == "sqlite"

    def created_at() -> sa.Column:
        return sa.Column("created_at", sa.Text() if sqlite else sa.DateTime(timezone=True), nullable=False,
                         server_default=sa.text("(strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))" if sqlite
                                                else "now()"))
    if "booking_mapping" not in present:
        op.create_table(
            "booking_mapping",
            sa.Column("name", sa.Text(), primary_key=True),
            sa.Column("source", sa.Text()),
            sa.Column("statuses", json, nullable=False, server_default=sa.text("'{}'")),
            sa.Column("set_status", sa.Text()),
            sa.Column("read_only", sa.Text()),
            sa.Column("absent", json, nullable=False, server_default=sa.text("'{}'")),
            created_at(),
        )
    if "capture_snapshots" not in present:
        op.create_table(
            "capture_snapshots",
            sa.Column("table_name", sa.Text(), primary_key=True),
            sa.Column("row_id", sa.BigInteger(), primary_key=True),
            sa.Column("doc", json),
            sa.Column("gone", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        )
    if "capture_errors" not in present:
        big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
        op.create_table(
            "capture_errors",
            sa.Column("id", big_id, primary_key=True),
            sa.Column("table_name", sa.Text(), nullable=False),
            sa.Column("op", sa.Text(), nullable=False),
            sa.Column("row_doc", json),
            sa.Column("error", sa.Text(), nullable=False),
            created_at(),
        )


def downgrade() -> None:
    for table in ("capture_errors", "capture_snapshots", "booking_mapping"):
        op.drop_table(table)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        schema = context.config.attributes["schema"]
        op.execute(f"DROP FUNCTION IF EXISTS {schema}.apptflow_capture() CASCADE")
        _move(schema, "public")
