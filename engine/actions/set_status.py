"""``set_status``: change the appointment's status in the database, which may set off status workflows.

It is not sent through a channel: the delivery worker writes the status and
records the delivery in one transaction; a dry run records what it would
write. A chain of such changes is bounded (``[daemon] max_chain_depth``).
"""

from __future__ import annotations

import difflib

from engine.actions.base import REQUIRED_TEMPLATE, ActionType, register
from engine.errors import RenderError
from engine.templates import is_template, render


@register
class SetStatus(ActionType):
    name = "set_status"
    fields = {"status": REQUIRED_TEMPLATE}
    needs_appointment = True
    changes_status = True

    def check(self, check, fields, place, known):
        if known is not None and known.read_only:
            check.add(place, f"set_status cannot write here: {known.read_only}")
        elif isinstance(fields.get("status"), str):
            _status(check, fields["status"], f"{place}.status", known)

    def render(self, fields, booking, context, recipient):
        status = render(fields["status"], context).strip()
        if not status:
            raise RenderError("the status rendered empty")
        return {"status": status}

    def describe(self, rendered):
        return f"status → {rendered['status']}"


def _status(check, value: str, place: str, known) -> None:
    """A status set_status writes: never empty; a literal one known, when the known ones are given
    (the configured statuses and those the appointments hold). A template is judged when it runs."""
    if not value.strip():
        check.add(place, "empty: set_status needs the status to write")
    elif known is not None and known.statuses is not None and not is_template(value) \
            and value not in known.statuses:
        close = difflib.get_close_matches(value, sorted(known.statuses), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        check.add(place, f"unknown status {value!r} (known: {', '.join(sorted(known.statuses))}; "
                         f"{known.statuses_from}){hint}")
