"""Turn matches into outbox rows: one per action (per recipient, on per-recipient channels)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from db.codes import DeliveryStatus
from db.records import Booking
from engine import quiet_hours
from engine.actions import action_type
from engine.context import OCCURRED_AT
from engine.matching import Match
from engine.render import recipient_count
from engine.windows import ON_TIME, Skip, Window
from engine.workflow import Action

# The default of [daemon] max_chain_depth: set_status changes in a row before a chain is stopped.
MAX_CHAIN_DEPTH = 5


def after_crash(action: Action) -> str:
    """What to do with a send of *action* interrupted by a crash: resend or hold."""
    return action.fields.get("after_crash") or action_type(action.type).after_crash


def idempotency_key(match: Match, action: Action, position: int, recipient: int | None) -> str:
    """(workflow, action, recipient, subject, occurrence): the same firing can never be written twice."""
    action_ref = action.id if action.id is not None else f"p{position}"
    return (f"w{match.workflow.id}:a{action_ref}:r{'' if recipient is None else recipient}:"
            f"{match.subject_table}:{match.subject_id}:{match.occurrence}")


def plan_deliveries(match: Match, now: dt.datetime, *, max_depth: int = MAX_CHAIN_DEPTH,
                    booking: Booking | None = None, send_window: Window | None = None) -> list[dict[str, Any]]:
    """The outbox rows for one match, written *now* (which their context keeps: OCCURRED_AT).

    Each is due at the match's planned time (``fire_time``), else now. With
    the *booking*, a delivery due outside its send window (its own, else
    *send_window*) waits for the window to open, goes early, or is skipped
    (engine/quiet_hours.py). A set_status action at the end of a chain
    *max_depth* long is written as ``skipped`` with the reason, so two
    workflows flipping a status back and forth stop and the history says why.
    """
    rows = []
    due = _due(match, now)
    for position, action in enumerate(match.workflow.actions):
        count = recipient_count(action)
        for recipient in range(count) if count is not None else (None,):
            status, error, at, context = _windowed(match, action, recipient, booking, send_window, due, now)
            if action_type(action.type).changes_status and match.depth >= max_depth:
                status = DeliveryStatus.SKIPPED
                error = f"set_status chain stopped: {match.depth} status changes in a row (limit {max_depth})"
            rows.append({
                "idempotency_key": idempotency_key(match, action, position, recipient),
                "workflow_id": match.workflow.id,
                "action_id": action.id,
                "action_position": position,
                "action_type": action.type,
                "recipient_index": recipient,
                "after_crash": after_crash(action),
                "subject_table": match.subject_table,
                "subject_id": match.subject_id,
                "event_id": match.event_id,
                "occurrence": match.occurrence,
                "context": context,
                "depth": match.depth,
                "status": status,
                "error": error,
                "next_attempt_at": at,
                "created_at": now,
                "updated_at": now,
            })
    return rows


def _windowed(match: Match, action: Action, recipient: int | None, booking: Booking | None,
              send_window: Window | None, due: dt.datetime, now: dt.datetime):
    """(status, error, next attempt, context) of one delivery, as its send window has it."""
    context = {**match.context, OCCURRED_AT: now.isoformat()}
    when = quiet_hours.schedule(action, booking, recipient, due=due, now=now, default=send_window,
                                context=match.context)
    if isinstance(when, Skip):
        return DeliveryStatus.SKIPPED, when.reason, now, context
    if when is None or when.how == ON_TIME:
        return DeliveryStatus.PENDING, None, now if when is None else when.at, context
    context[quiet_hours.DEFERRAL] = record = quiet_hours.deferral(due, when, action, booking, recipient, send_window)
    return DeliveryStatus.PENDING, quiet_hours.waiting_note(record) if when.at > now else None, when.at, context


def _due(match: Match, now: dt.datetime) -> dt.datetime:
    """When the match's deliveries are due: its planned time (a time-based firing), else now."""
    planned = match.context.get(quiet_hours.FIRE_TIME)
    return dt.datetime.fromisoformat(str(planned)) if planned else now
