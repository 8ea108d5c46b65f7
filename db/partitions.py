"""The partition a row belongs to, in SQL: the remainder of its key by ``[daemon] partitions``
(docs/scale-out.md)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import false, true
from sqlalchemy.sql import ColumnElement


def in_partitions(key: ColumnElement, count: int, held: Collection[int]) -> ColumnElement:
    """A condition: the row with this key is in one of the *held* partitions out of *count*."""
    if len(held) >= count:
        return true()
    if not held:
        return false()
    return (key % count).in_(sorted(held))
