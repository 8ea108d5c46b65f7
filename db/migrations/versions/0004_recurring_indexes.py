"""Indexes for the recurring triggers on the reference appointments table.

``customer_inactive`` looks for the visits that ended on given days and at one
customer's appointments, and ``schedule`` for a staff member's (or everyone's)
appointments in a window: without these, each periodic reconciliation would
read the whole table. Only the reference table is indexed, where it is a table
of apptflow's making; a mapping's views read the application's own tables,
whose indexes are the application's (docs/existing-databases.md).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# name → columns, as db/tables.py declares them
INDEXES = {
    "appointments_by_end": ("ends_at",),
    "appointments_by_start": ("starts_at",),
    "appointments_by_customer": ("customer_id", "starts_at"),
    "appointments_by_staff": ("staff_id", "starts_at"),
}


def _schema(bind) -> str | None:
    """Where the reference booking tables are: PostgreSQL keeps them in public, apart from apptflow's."""
    return "public" if bind.dialect.name == "postgresql" else None


def upgrade() -> None:
    bind = op.get_bind()
    schema = _schema(bind)
    inspector = sa.inspect(bind)
    if "appointments" not in inspector.get_table_names(schema=schema):
        return  # a mapping's views: nothing of ours to index
    present = {index["name"] for index in inspector.get_indexes("appointments", schema=schema)}
    for name, columns in INDEXES.items():
        if name not in present:
            op.create_index(name, "appointments", list(columns), schema=schema)


def downgrade() -> None:
    bind = op.get_bind()
    schema = _schema(bind)
    present = {index["name"] for index in sa.inspect(bind).get_indexes("appointments", schema=schema)}
    for name in INDEXES:
        if name in present:
            op.drop_index(name, "appointments", schema=schema)
