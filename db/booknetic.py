"""Booknetic's own workflow tables, read for ``apptflow import booknetic``.

Booknetic keeps a workflow as a row of ``<prefix>bkntc_workflows`` (its event in ``when``, its filters
and offset as JSON text in ``data``) with its actions in ``<prefix>bkntc_workflow_actions`` (a ``driver``
and JSON ``data``). These are read as they are; nothing of Booknetic's is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ProgrammingError

from db.errors import DatabaseError


class NoBookneticWorkflows(DatabaseError):
    """The database has no Booknetic workflow tables under that prefix."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BookneticAction:
    id: int
    driver: str
    data: Any  # the decoded JSON, or the text itself when it is not JSON
    active: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class BookneticWorkflow:
    id: int
    name: str
    when: str
    data: Any
    active: bool
    tenant_id: int | None
    actions: tuple[BookneticAction, ...]


def _decode(value: Any) -> Any:
    if not isinstance(value, str):
        return value if value is not None else {}
    try:
        return json.loads(value) if value.strip() else {}
    except ValueError:
        return value


def read_workflows(conn: Connection, application_prefix: str, tenant: int | None = None) -> list[BookneticWorkflow]:
    """Every Booknetic workflow (of *tenant*, if given) with its actions, in id order."""
    workflows, actions = f"{application_prefix}bkntc_workflows", f"{application_prefix}bkntc_workflow_actions"
    try:
        rows = conn.execute(text(
            f"SELECT id, name, `when`, data, is_active, tenant_id FROM {workflows} "
            "WHERE :tenant IS NULL OR tenant_id = :tenant ORDER BY id"), {"tenant": tenant}).all()
        action_rows = conn.execute(text(
            f"SELECT id, workflow_id, driver, data, is_active FROM {actions} ORDER BY workflow_id, id")).all()
    except ProgrammingError as error:  # no such table
        raise NoBookneticWorkflows(f"no Booknetic workflow tables ({workflows}, {actions}): "
                                   f"{str(getattr(error, 'orig', error)).splitlines()[0]}") from None
    by_workflow: dict[int, list[BookneticAction]] = {}
    for row in action_rows:
        by_workflow.setdefault(row.workflow_id, []).append(BookneticAction(
            id=row.id, driver=row.driver or "", data=_decode(row.data), active=bool(row.is_active)))
    return [BookneticWorkflow(id=row.id, name=row.name or f"Booknetic workflow {row.id}", when=row.when or "",
                              data=_decode(row.data), active=bool(row.is_active), tenant_id=row.tenant_id,
                              actions=tuple(by_workflow.get(row.id, ()))) for row in rows]
