"""The conversation: delivery receipts on deliveries, received messages, the opt-out list, polling offsets.

``deliveries`` gains the provider's status of a sent message (``provider_status``, ``provider_error``,
``provider_updated_at``) and the number or chat id it went to (``address``), with the indexes a status
callback (by message id) and a reply (by address) are matched with. Rows written before keep NULL in all
four: they were sent before receipts were asked for, and a reply to one of them matches nothing.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from db.options import own_prefix
from db.types import ShortText, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Each step only where missing: a database created whole before it was stamped has some of them.
    bind = op.get_bind()
    # reflection gives the names as stored: with apptflow's prefix on MySQL/MariaDB
    present = {name.removeprefix(own_prefix(bind) or "") for name in sa.inspect(bind).get_table_names()}
    have = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("deliveries")}
    for column in (sa.Column("provider_status", ShortText), sa.Column("provider_error", sa.Text()),
                   sa.Column("provider_updated_at", UTCDateTime()), sa.Column("address", ShortText)):
        if column.name not in have:
            op.add_column("deliveries", column)
    indexes = {index["name"] for index in sa.inspect(op.get_bind()).get_indexes("deliveries")}
    if "deliveries_by_address" not in indexes:
        op.create_index("deliveries_by_address", "deliveries", ["address", "sent_at"])
    if "deliveries_by_provider_id" not in indexes:
        op.create_index("deliveries_by_provider_id", "deliveries", ["provider_id"],
                        mysql_length={"provider_id": 64})
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    if "inbound_messages" not in present:
        op.create_table(
            "inbound_messages",
            sa.Column("id", big_id, primary_key=True, autoincrement=True),
            sa.Column("channel", ShortText, nullable=False),
            sa.Column("sender", ShortText, nullable=False),
            sa.Column("body", sa.Text(), nullable=False),
            sa.Column("provider_id", ShortText, nullable=False, unique=True),
            sa.Column("outcome", ShortText, nullable=False),
            sa.Column("delivery_id", sa.BigInteger()),
            sa.Column("appointment_id", sa.BigInteger()),
            sa.Column("received_at", UTCDateTime(), nullable=False),
            sqlite_autoincrement=True,
        )
        op.create_index("inbound_messages_by_time", "inbound_messages", ["received_at"])
    if "optouts" not in present:
        op.create_table(
            "optouts",
            sa.Column("channel", ShortText, primary_key=True),
            sa.Column("address", ShortText, primary_key=True),
            sa.Column("since", UTCDateTime(), nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
        )
    if "inbound_offsets" not in present:
        op.create_table(
            "inbound_offsets",
            sa.Column("source", ShortText, primary_key=True),
            sa.Column("next_offset", sa.BigInteger(), nullable=False),
            sa.Column("updated_at", UTCDateTime(), nullable=False),
        )


def downgrade() -> None:
    for table in ("inbound_offsets", "optouts", "inbound_messages"):
        op.drop_table(table)
    op.drop_index("deliveries_by_provider_id", "deliveries")
    op.drop_index("deliveries_by_address", "deliveries")
    with op.batch_alter_table("deliveries") as batch:
        for name in ("address", "provider_updated_at", "provider_error", "provider_status"):
            batch.drop_column(name)
