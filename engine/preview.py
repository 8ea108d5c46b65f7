"""A workflow previewed against one booking (``apptflow workflow test``): its filters checked and every
action rendered, as lines of text; nothing is sent."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from db.records import Booking
from engine.context import build_context
from engine.errors import RenderError
from engine.matching import Facts, FilterCheck, check_filters, facts_of, sample_trigger_context
from engine.render import recipient_count, render_action
from engine.workflow import Action, Workflow


@dataclass(frozen=True, slots=True, kw_only=True)
class Preview:
    """The rendered actions, as lines to print, and whether any failed to render."""

    lines: list[str]
    failed: bool


def filter_checks(workflow: Workflow, booking: Booking) -> list[FilterCheck]:
    """Each of the workflow's filters against the booking as it is (a customer alone has only a locale)."""
    facts = (facts_of(booking) if booking.appointment is not None
             else Facts(locale=booking.customer.locale if booking.customer else None))
    return check_filters(workflow.filters, facts)


def filter_lines(checks: list[FilterCheck]) -> list[str]:
    """The filter checks, one line each under a heading."""
    return ["filters:" + ("" if checks else " none (every appointment matches)"), *(f"  {c}" for c in checks)]


def render_preview(workflow: Workflow, booking: Booking, *, company: dict[str, str], now: dt.datetime) -> Preview:
    """Every action rendered for *booking*, once per recipient entry on per-recipient channels, with
    plausible trigger keywords; an action that fails to render shows its error and the others go on."""
    context = build_context(booking, company=company, extra=sample_trigger_context(workflow, booking, now))
    lines: list[str] = []
    failed = False
    for position, action in enumerate(workflow.actions):
        count = recipient_count(action)
        for index in range(count or 1):
            lines.append(f"--- actions[{position}] {action.type}" + (f" #{index}" if count else ""))
            try:
                lines += _rendered_lines(action, booking, context, index if count else None)
            except RenderError as problem:
                failed = True
                lines.append(f"error: {problem}")
    return Preview(lines=lines, failed=failed)


def _rendered_lines(action: Action, booking: Booking, context: dict, index: int | None) -> list[str]:
    lines = []
    for key, value in render_action(action, booking, context, index).items():
        if value not in (None, [], {}, ""):
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            lines.append(f"{key}: {text}" if "\n" not in text else f"{key}:\n{text}")
    return lines
