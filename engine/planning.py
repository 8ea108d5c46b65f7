"""When a time-offset workflow fires for an appointment: pure functions, ``now`` passed in.

A firing is planned at ``anchor + offset`` (the anchor is ``starts_at`` for
``appointment_starts`` and ``ends_at`` for ``appointment_ends``), in UTC.

A firing whose planned time has already passed when it is planned (the
appointment was booked 10 minutes before a "30 minutes before" reminder, or
while the daemon was down) runs at once if the anchor time is still ahead or
if it is no later than the workflow's grace period; otherwise it is recorded
as ``skipped`` with the reason. A firing that was planned and then missed
while the daemon was down is APScheduler's: late within the grace period,
``missed`` beyond it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from db.records import Booking
from engine import quiet_hours
from engine.durations import format_duration
from engine.matching import facts_of, filters_hold
from engine.triggers import OFFSET, trigger_type
from engine.triggers.offsets import DEFAULT_GRACE
from engine.windows import Skip, Window
from engine.workflow import Workflow


@dataclass(frozen=True, slots=True, kw_only=True)
class Firing:
    """A job to have: run at ``run_at`` for the firing planned at ``planned_at``."""

    workflow_id: int
    appointment_id: int
    planned_at: dt.datetime
    run_at: dt.datetime
    grace: dt.timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class TooLate:
    """A firing planned after its time and its anchor had passed: recorded as skipped, never run."""

    workflow_id: int
    appointment_id: int
    planned_at: dt.datetime
    reason: str


def grace_of(workflow: Workflow) -> dt.timedelta:
    return workflow.trigger.grace or DEFAULT_GRACE


def is_planned(workflow: Workflow) -> bool:
    """Whether the workflow's trigger fires at a time derived from the appointment (a job per appointment)."""
    return trigger_type(workflow.trigger.type).planning == OFFSET


def anchor_column(workflow: Workflow) -> str:
    """The appointment column a planned workflow counts its offset from (``starts_at``, ``ends_at``)."""
    return trigger_type(workflow.trigger.type).anchor_column


def anchor_of(workflow: Workflow, booking: Booking) -> dt.datetime:
    return trigger_type(workflow.trigger.type).anchor(booking)


def planned_time(workflow: Workflow, booking: Booking) -> dt.datetime:
    """``anchor + offset`` in UTC."""
    return anchor_of(workflow, booking) + workflow.trigger.offset


def plan(workflow: Workflow, booking: Booking | None, now: dt.datetime, *,
         send_window: Window | None = None) -> Firing | TooLate | None:
    """The firing *workflow* should have for *booking* as things are at *now*, if any.

    Its job runs when the first of its deliveries is meant to go out: at the planned time, or as the
    send windows (the actions' own, else *send_window*) move it, later or, for a reminder, earlier.
    """
    if booking is None or booking.appointment is None or not workflow.enabled:
        return None
    if not is_planned(workflow) or not filters_hold(workflow.filters, facts_of(booking)):
        return None
    planned = planned_time(workflow, booking)
    ids = {"workflow_id": workflow.id, "appointment_id": booking.appointment.id, "planned_at": planned}
    grace = grace_of(workflow)
    meant = quiet_hours.first_send(workflow, booking, planned, send_window)
    if meant >= now:
        return Firing(run_at=meant, grace=grace, **ids)
    if now < anchor_of(workflow, booking) or now - meant <= grace:
        return Firing(run_at=_late_run(workflow, booking, planned, now, send_window), grace=grace, **ids)
    late = format_duration(dt.timedelta(seconds=round((now - planned).total_seconds())))
    return TooLate(reason=f"planned {late} after its time ({planned.isoformat()}), past the "
                          f"{format_duration(grace)} grace and the appointment's "
                          f"{trigger_type(workflow.trigger.type).what}", **ids)


def _late_run(workflow: Workflow, booking: Booking, planned: dt.datetime, now: dt.datetime,
              send_window: Window | None) -> dt.datetime:
    """When a firing planned after its time runs: now, or when its windows next open (the firing then
    re-checks the appointment at that moment); now if every delivery is to be skipped (it records why)."""
    context = {quiet_hours.FIRE_TIME: planned.isoformat()}
    times = []
    for action, recipient in quiet_hours.deliveries_of(workflow):
        when = quiet_hours.schedule(action, booking, recipient, due=planned, now=now, default=send_window,
                                    context=context)
        if not isinstance(when, Skip):
            times.append(now if when is None else when.at)
    return max(now, min(times, default=now))


def occurrence(planned_at: dt.datetime) -> str:
    """The occurrence part of the idempotency key: the planned time, so a re-fired job cannot send twice."""
    return f"at:{planned_at.isoformat()}"


def still_planned(workflow: Workflow, booking: Booking | None, planned_at: dt.datetime) -> bool:
    """Whether a job planned for *planned_at* still stands: same time, workflow enabled, filters hold.

    Lateness is not judged here: APScheduler runs a job within its grace and
    reports it missed beyond.
    """
    if booking is None or booking.appointment is None or not workflow.enabled:
        return False
    return filters_hold(workflow.filters, facts_of(booking)) and planned_time(workflow, booking) == planned_at


def earliest_anchor(workflow: Workflow, now: dt.datetime) -> dt.datetime:
    """Appointments whose anchor is before this cannot have a firing to plan at *now*."""
    return now - max(dt.timedelta(0), workflow.trigger.offset + grace_of(workflow))
