"""Which workflows a captured change triggers: pure functions on plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from db.records import Booking, ChangeEvent
from engine.triggers import TriggerType, all_types, trigger_type
from engine.workflow import Filters, Workflow


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


def triggers_fired(event: ChangeEvent) -> list[tuple[TriggerType, dict[str, Any]]]:
    """The triggers a change sets off, each with what it adds to the template context."""
    fired = []
    for kind in all_types():
        context = kind.fired(event)
        if context is not None:
            fired.append((kind, context))
    return fired


def match_event(event: ChangeEvent, workflows: list[Workflow], booking: Booking | None) -> list[Match]:
    """The (enabled, valid) workflows *event* sets off, given the subject's rows as they are now.

    A subject deleted before its event is handled sets off nothing.
    """
    if booking is None:
        return []
    # A received reply or receipt is about the appointment as it is now; a change, as the event recorded it.
    facts = facts_of(booking) if event.received else facts_for(event.new or {}, booking)
    matches = []
    for kind, context in triggers_fired(event):
        for workflow in workflows:
            if not workflow.enabled or workflow.trigger.type != kind.name:
                continue
            if kind.admits(workflow.trigger, context) and filters_hold(workflow.filters, facts):
                matches.append(Match(
                    workflow=workflow, subject_table=event.subject_table, subject_id=event.subject_id,
                    occurrence=f"event:{event.id}:{kind.name}", context=context,
                    event_id=event.id, depth=event.depth,
                ))
    return matches


def sample_trigger_context(workflow: Workflow, booking: Booking, now) -> dict[str, Any]:
    """Plausible trigger keywords for previewing a workflow (``apptflow workflow test``)."""
    return trigger_type(workflow.trigger.type).sample(workflow.trigger, booking)
