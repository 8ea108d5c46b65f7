"""Baseline: the schema of apptflow 0.1, created from the table definitions.

A database that has no revision yet is created whole from ``db.tables`` and
stamped at the newest revision, so this first revision has nothing to do.
Later revisions change an existing schema step by step.

Revision ID: 0001
Revises:
"""

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
