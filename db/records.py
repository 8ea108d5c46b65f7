"""Plain frozen values that queries hand back: no ORM rows leave ``db/``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRow:
    """A ``workflow_actions`` row; ``config`` is the column's JSON text, undecoded."""

    id: int
    position: int
    type: str
    config: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowRow:
    """A ``workflows`` row with its actions in position order; JSON columns as undecoded text.

    JSON arrives as text so that a malformed value written by hand is reported
    by whoever decodes it instead of failing the query.
    """

    id: int
    name: str
    enabled: bool
    trigger_type: str
    trigger: str
    filters: str
    error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    actions: tuple[ActionRow, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class KnownIds:
    """The ids present in the booking tables that filters can name."""

    locations: frozenset[int]
    services: frozenset[int]
    staff: frozenset[int]


def row_dict(row: Any) -> dict[str, Any]:
    """A SQLAlchemy row as a plain dict."""
    return dict(row._mapping)
