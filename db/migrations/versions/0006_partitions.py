"""Partitions: what picks a change event's and a job's partition, and what each instance leads.

``change_events`` and ``apscheduler_jobs`` gain ``partition_key``, whose remainder by ``[daemon]
partitions`` is the partition whose leader consumes the event or runs the job (docs/scale-out.md);
``instances`` gains the partition count it runs with and the partitions it leads. Jobs already planned
get their key from their id (its last part is the appointment's, customer's or target's id); events keep
NULL, which means "by the row's id", as every captured change is.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ADDED = {"change_events": (sa.Column("partition_key", sa.BigInteger()),),
         "apscheduler_jobs": (sa.Column("partition_key", sa.BigInteger()),),
         "instances": (sa.Column("partitions", sa.Integer()), sa.Column("leads", sa.Text()))}


def _key(job_id: str) -> int:
    last = job_id.rsplit(":", 1)[-1]
    return int(last) if last.isdigit() else 0


def upgrade() -> None:
    bind = op.get_bind()
    for table, columns in ADDED.items():
        have = {column["name"] for column in sa.inspect(bind).get_columns(table)}
        for column in columns:
            if column.name not in have:
                op.add_column(table, column)
    jobs = sa.table("apscheduler_jobs", sa.column("id", sa.Text()), sa.column("partition_key", sa.BigInteger()))
    ids = bind.execute(sa.select(jobs.c.id).where(jobs.c.partition_key.is_(None))).scalars().all()
    if ids:
        bind.execute(sa.update(jobs).where(jobs.c.id == sa.bindparam("job")).values(partition_key=sa.bindparam("key")),
                     [{"job": job_id, "key": _key(job_id)} for job_id in ids])


def downgrade() -> None:
    for table, columns in ADDED.items():
        for column in columns:
            # SQLite drops a column in place (a batch's copy of change_events would break the capture triggers)
            op.drop_column(table, column.name)
