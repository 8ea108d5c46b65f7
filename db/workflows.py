"""Queries on the workflow tables."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Text, cast, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from db import mapping
from db.errors import Conflict, NotFound
from db.records import ActionRow, KnownIds, WorkflowRow
from db.servers import among
from db.tables import appointments, locations, services, staff, utcnow, workflow_actions, workflows

_WORKFLOW_COLUMNS = (
    workflows.c.id, workflows.c.name, workflows.c.enabled, workflows.c.trigger_type,
    cast(workflows.c.trigger, Text).label("trigger"), cast(workflows.c.filters, Text).label("filters"),
    workflows.c.error, workflows.c.created_at, workflows.c.updated_at,
)


def _actions_by_workflow(conn: Connection, ids: list[int]) -> dict[int, list[ActionRow]]:
    query = (
        select(workflow_actions.c.workflow_id, workflow_actions.c.id, workflow_actions.c.position,
               workflow_actions.c.type, cast(workflow_actions.c.config, Text).label("config"))
        .where(among(conn, workflow_actions.c.workflow_id, ids))
        .order_by(workflow_actions.c.workflow_id, workflow_actions.c.position)
    )
    grouped: dict[int, list[ActionRow]] = {}
    for row in conn.execute(query):
        grouped.setdefault(row.workflow_id, []).append(
            ActionRow(id=row.id, position=row.position, type=row.type, config=row.config)
        )
    return grouped


def _with_actions(conn: Connection, rows) -> list[WorkflowRow]:
    rows = list(rows)
    actions = _actions_by_workflow(conn, [row.id for row in rows])
    return [
        WorkflowRow(**row._mapping, actions=tuple(actions.get(row.id, ())))
        for row in rows
    ]


def list_workflows(conn: Connection) -> list[WorkflowRow]:
    """Every workflow, by id."""
    return _with_actions(conn, conn.execute(select(*_WORKFLOW_COLUMNS).order_by(workflows.c.id)))


def get_workflow(conn: Connection, workflow_id: int) -> WorkflowRow:
    """One workflow; NotFound if there is none with that id."""
    rows = _with_actions(conn, conn.execute(select(*_WORKFLOW_COLUMNS).where(workflows.c.id == workflow_id)))
    if not rows:
        raise NotFound(f"no workflow with id {workflow_id}")
    return rows[0]


def get_workflows(conn: Connection, ids: set[int]) -> dict[int, WorkflowRow]:
    """The workflows with these ids that exist, by id."""
    rows = conn.execute(select(*_WORKFLOW_COLUMNS).where(among(conn, workflows.c.id, sorted(ids))))
    return {row.id: row for row in _with_actions(conn, rows)}


def workflow_id_by_name(conn: Connection, name: str) -> int | None:
    """The id of the workflow called *name*, if any."""
    return conn.execute(select(workflows.c.id).where(workflows.c.name == name)).scalar_one_or_none()


def insert_workflow(conn: Connection, parts: dict[str, Any]) -> int:
    """Insert a workflow and its actions from their column values; Conflict on a duplicate name."""
    values = {k: parts[k] for k in ("name", "enabled", "trigger_type", "trigger", "filters")}
    try:
        with conn.begin_nested():
            workflow_id = conn.execute(insert(workflows).values(values)).inserted_primary_key[0]
    except IntegrityError:
        raise Conflict(f"a workflow named {parts['name']!r} already exists") from None
    _insert_actions(conn, workflow_id, parts["actions"])
    return workflow_id


def _insert_actions(conn: Connection, workflow_id: int, actions: list[dict[str, Any]], start: int = 0) -> None:
    if actions:
        conn.execute(insert(workflow_actions), [
            {"workflow_id": workflow_id, "position": start + n, "type": a["type"], "config": a["config"]}
            for n, a in enumerate(actions)
        ])


def replace_workflow(conn: Connection, workflow_id: int, parts: dict[str, Any]) -> None:
    """Replace a workflow's definition in place: the same id, and, position by position, the same
    action ids where the type is unchanged, so pending deliveries of an edited action are sent with
    its new text. An action whose type changed, or that is gone, takes its pending deliveries with it
    (they are skipped when they come up). NotFound if there is no such workflow; Conflict on a
    duplicate name."""
    values = {k: parts[k] for k in ("name", "enabled", "trigger_type", "trigger", "filters")}
    try:
        with conn.begin_nested():
            _update(conn, workflow_id, **values, error=None)
    except IntegrityError:
        raise Conflict(f"a workflow named {parts['name']!r} already exists") from None
    old = conn.execute(select(workflow_actions.c.id, workflow_actions.c.type)
                       .where(workflow_actions.c.workflow_id == workflow_id)
                       .order_by(workflow_actions.c.position)).all()
    new = parts["actions"]
    kept = 0
    while kept < min(len(old), len(new)) and old[kept].type == new[kept]["type"]:
        conn.execute(update(workflow_actions).where(workflow_actions.c.id == old[kept].id)
                     .values(config=new[kept]["config"]))
        kept += 1
    if old[kept:]:
        conn.execute(delete(workflow_actions).where(workflow_actions.c.id.in_([row.id for row in old[kept:]])))
    _insert_actions(conn, workflow_id, new[kept:], start=kept)


def set_enabled(conn: Connection, workflow_id: int, enabled: bool) -> None:
    """Enable or disable a workflow; NotFound if it does not exist."""
    _update(conn, workflow_id, enabled=enabled)


def set_error(conn: Connection, workflow_id: int, error: str | None) -> None:
    """Record (or clear, with None) why a workflow row is invalid."""
    conn.execute(update(workflows).where(workflows.c.id == workflow_id).values(error=error))


def _update(conn: Connection, workflow_id: int, **values: Any) -> None:
    result = conn.execute(
        update(workflows).where(workflows.c.id == workflow_id).values(**values, updated_at=utcnow())
    )
    if result.rowcount == 0:
        raise NotFound(f"no workflow with id {workflow_id}")


def delete_workflow(conn: Connection, workflow_id: int) -> None:
    """Delete a workflow and its actions; NotFound if it does not exist."""
    conn.execute(delete(workflow_actions).where(workflow_actions.c.workflow_id == workflow_id))
    if conn.execute(delete(workflows).where(workflows.c.id == workflow_id)).rowcount == 0:
        raise NotFound(f"no workflow with id {workflow_id}")


def known_ids(conn: Connection, statuses: Iterable[str] | None = None) -> KnownIds:
    """The location, service and staff ids that exist; with *statuses* (the configured ones), the
    statuses set_status may write: those and every status the appointments already hold. On an
    application's own tables, set_status may write only the statuses its mapping translates."""
    def ids(table) -> frozenset[int]:
        return frozenset(conn.execute(select(table.c.id)).scalars())
    found = dict(locations=ids(locations), services=ids(services), staff=ids(staff))
    mapped = mapping.installed(conn)
    if mapped is not None:
        return KnownIds(**found, statuses=frozenset(mapped.statuses),
                        statuses_from=f"the statuses of mapping {mapped.name}",
                        read_only=mapped.read_only and f"mapping {mapped.name} is read-only: {mapped.read_only}",
                        absent=dict(mapped.absent))
    held = None
    if statuses is not None:
        held = frozenset(statuses) | frozenset(conn.execute(select(appointments.c.status).distinct()).scalars())
    return KnownIds(**found, statuses=held)
