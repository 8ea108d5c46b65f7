"""The booking fields behind Booknetic's keywords: notes, prices, attendees, buffers, images and more.

Every added column is nullable or has a default, so rows written before keep
their meaning (one attendee, no notes, no price breakdown). A column the
booking application already added itself is left as it is.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from db.types import CalendarDate

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def added() -> dict[str, list[sa.Column]]:
    """The columns this revision adds, by table (fresh objects on each call)."""
    return {
        "appointments": [
            sa.Column("notes", sa.Text()),
            sa.Column("total_price", sa.Numeric(12, 2)),
            sa.Column("paid_price", sa.Numeric(12, 2)),
            sa.Column("discount_price", sa.Numeric(12, 2)),
            sa.Column("payment_method", sa.Text()),
            sa.Column("attendees", sa.Integer(), nullable=False, server_default=sa.text("1")),
            sa.Column("buffer_before_minutes", sa.Integer()),
            sa.Column("buffer_after_minutes", sa.Integer()),
        ],
        "customers": [
            sa.Column("birthday", CalendarDate()),
            sa.Column("notes", sa.Text()),
            sa.Column("image_url", sa.Text()),
        ],
        "services": [
            sa.Column("category", sa.Text()),
            sa.Column("notes", sa.Text()),
            sa.Column("color", sa.Text()),
            sa.Column("image_url", sa.Text()),
        ],
        "staff": [
            sa.Column("about", sa.Text()),
            sa.Column("image_url", sa.Text()),
        ],
        "locations": [
            sa.Column("phone", sa.Text()),
            sa.Column("notes", sa.Text()),
            sa.Column("image_url", sa.Text()),
            sa.Column("latitude", sa.Float()),
            sa.Column("longitude", sa.Float()),
        ],
    }


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for table, columns in added().items():
        present = {column["name"] for column in inspector.get_columns(table)}
        for column in columns:
            if column.name not in present:
                op.add_column(table, column)


def downgrade() -> None:
    for table, columns in added().items():
        with op.batch_alter_table(table) as batch:
            for column in reversed(columns):
                batch.drop_column(column.name)
