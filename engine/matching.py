"""Which workflows a captured change triggers: pure functions on plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from db.codes import CapturedTable, Operation
from db.records import Booking, ChangeEvent
from db.types import parse_timestamp
from engine.durations import format_duration
from engine.workflow import RESCHEDULE_ASPECTS, Filters, Workflow


@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    """What the filters look at, for one appointment at one moment."""

    location_id: int | None = None
    service_id: int | None = None
    staff_id: int | None = None
    status: str | None = None
    started_by: str | None = None
    locale: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """One workflow to run for one subject (appointment or customer) and occurrence."""

    workflow: Workflow
    subject_table: str
    subject_id: int
    occurrence: str
    context: dict[str, Any] = field(default_factory=dict)
    event_id: int | None = None
    depth: int = 0


def _locale(booking: Booking | None, snapshot: dict[str, Any]) -> str | None:
    """The customer's locale, else the appointment's (DESIGN: 'the customer's (or appointment's)')."""
    customer = booking.customer if booking else None
    return (customer.locale if customer else None) or snapshot.get("locale")


def facts_for(snapshot: dict[str, Any], booking: Booking | None) -> Facts:
    """Facts from an event's new values (the moment of the change) and the rows as they are now."""
    appointment = booking.appointment if booking else None
    return Facts(
        location_id=snapshot.get("location_id"),
        service_id=snapshot.get("service_id"),
        staff_id=snapshot.get("staff_id"),
        status=snapshot.get("status"),
        started_by=appointment.started_by if appointment else snapshot.get("started_by"),
        locale=_locale(booking, snapshot),
    )


def facts_of(booking: Booking) -> Facts:
    """Facts of a booking as it is now (time-offset firings)."""
    a = booking.appointment
    return facts_for(
        {"location_id": a.location_id, "service_id": a.service_id, "staff_id": a.staff_id,
         "status": a.status, "started_by": a.started_by, "locale": a.locale},
        booking,
    )


def locale_matches(wanted: str, actual: str | None) -> bool:
    """``en`` matches ``en``, ``en_US`` and ``en-GB``; ``fr_FR`` matches only ``fr_FR`` (any case, - or _)."""
    if not actual:
        return False
    wanted, actual = wanted.replace("-", "_").lower(), actual.replace("-", "_").lower()
    return actual == wanted or ("_" not in wanted and actual.split("_")[0] == wanted)


@dataclass(frozen=True, slots=True, kw_only=True)
class FilterCheck:
    """One given filter against the facts: whether it holds, what it wants and what there is."""

    name: str
    holds: bool
    wanted: tuple
    actual: Any

    def __str__(self) -> str:
        verdict = "matches" if self.holds else "does not match"
        wanted = ", ".join(str(w) for w in self.wanted)
        return f"{self.name}: {verdict}: wants {wanted}; the appointment has {self.actual!r}"


def check_filters(filters: Filters, facts: Facts) -> list[FilterCheck]:
    """Each given filter checked against *facts*, in the order of the workflow's fields."""
    checks = []
    for name, allowed, value in (
        ("locations", filters.locations, facts.location_id),
        ("services", filters.services, facts.service_id),
        ("staff", filters.staff, facts.staff_id),
        ("statuses", filters.statuses, facts.status),
        ("started_by", filters.started_by, facts.started_by),
    ):
        if allowed is not None:
            checks.append(FilterCheck(name=name, holds=value in allowed, wanted=allowed, actual=value))
    if filters.locales is not None:
        checks.append(FilterCheck(name="locales", holds=any(locale_matches(w, facts.locale) for w in filters.locales),
                                  wanted=filters.locales, actual=facts.locale))
    return checks


def filters_hold(filters: Filters, facts: Facts) -> bool:
    """Whether every given filter holds for *facts*."""
    return all(check.holds for check in check_filters(filters, facts))


def _moment(value: Any):
    return parse_timestamp(value) if isinstance(value, str) else value


# The columns whose change makes each aspect of a reschedule (RESCHEDULE_ASPECTS).
_ASPECT_COLUMNS = {"time": ("starts_at", "ends_at"), "staff": ("staff_id",), "location": ("location_id",),
                   "service": ("service_id",)}


def _rescheduled(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What of a reschedule an update changed: time, staff, location, service (in that order)."""
    return [aspect for aspect, columns in _ASPECT_COLUMNS.items()
            if any(_moment(old.get(c)) != _moment(new.get(c)) for c in columns)]


def triggers_fired(event: ChangeEvent) -> list[tuple[str, dict[str, Any]]]:
    """The event triggers a change sets off, each with what it adds to the template context."""
    if event.table_name == CapturedTable.CUSTOMERS:
        return [("customer_created", {})] if event.op == Operation.INSERT else []
    if event.table_name != CapturedTable.APPOINTMENTS:
        return []
    if event.op == Operation.INSERT:
        return [("appointment_created", {})]
    if event.op != Operation.UPDATE:
        return []
    fired = []
    changed = _rescheduled(event.old, event.new)
    if changed:
        # what was there before, for the old_* keywords (names are looked up by the consumer)
        fired.append(("appointment_rescheduled", {
            "rescheduled": changed, "old_starts_at": event.old.get("starts_at"),
            "old_ends_at": event.old.get("ends_at"), "old_staff_id": event.old.get("staff_id"),
            "old_location_id": event.old.get("location_id"), "old_service_id": event.old.get("service_id")}))
    if event.old.get("status") != event.new.get("status"):
        fired.append(("appointment_status_changed",
                       {"old_status": event.old.get("status"), "new_status": event.new.get("status")}))
    return fired


def _transition_matches(workflow: Workflow, context: dict[str, Any]) -> bool:
    trigger = workflow.trigger
    return (trigger.from_statuses is None or context["old_status"] in trigger.from_statuses) and (
        trigger.to_statuses is None or context["new_status"] in trigger.to_statuses)


def match_event(event: ChangeEvent, workflows: list[Workflow], booking: Booking | None) -> list[Match]:
    """The (enabled, valid) workflows *event* sets off, given the subject's rows as they are now.

    A subject deleted before its event is handled sets off nothing.
    """
    if booking is None:
        return []
    facts = facts_for(event.new or {}, booking)
    matches = []
    for trigger_type, context in triggers_fired(event):
        for workflow in workflows:
            if not workflow.enabled or workflow.trigger.type != trigger_type:
                continue
            if trigger_type == "appointment_status_changed" and not _transition_matches(workflow, context):
                continue
            if trigger_type == "appointment_rescheduled" and not set(context["rescheduled"]) & set(
                    workflow.trigger.on or RESCHEDULE_ASPECTS):
                continue
            if filters_hold(workflow.filters, facts):
                matches.append(Match(
                    workflow=workflow, subject_table=event.table_name, subject_id=event.row_id,
                    occurrence=f"event:{event.id}:{trigger_type}", context=context,
                    event_id=event.id, depth=event.depth,
                ))
    return matches


def sample_trigger_context(workflow: Workflow, booking: Booking, now) -> dict[str, Any]:
    """Plausible trigger keywords for previewing a workflow (``apptflow workflow test``)."""
    trigger = workflow.trigger
    if trigger.type == "appointment_status_changed":
        status = booking.appointment.status if booking.appointment else None
        return {"old_status": (trigger.from_statuses or (status,))[0],
                "new_status": (trigger.to_statuses or (status,))[0]}
    if trigger.type == "appointment_rescheduled" and booking.appointment is not None:
        a = booking.appointment
        return {"rescheduled": list(trigger.on or RESCHEDULE_ASPECTS), "old_starts_at": a.starts_at.isoformat(),
                "old_ends_at": a.ends_at.isoformat(), "old_staff_name": booking.staff.name if booking.staff else "",
                "old_location_name": booking.location.name if booking.location else "",
                "old_service_name": booking.service.name if booking.service else ""}
    if trigger.is_time_offset and booking.appointment is not None:
        anchor = booking.appointment.starts_at if trigger.type == "appointment_starts" else booking.appointment.ends_at
        return {"fire_time": (anchor + trigger.offset).isoformat(), "offset": format_duration(trigger.offset)}
    return {}
