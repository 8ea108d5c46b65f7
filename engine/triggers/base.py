"""What a trigger is, and the registry that looks one up by name.

Each trigger is one module of :mod:`engine.triggers` declaring its parameters
and their checks, the keywords it adds to the booking's, whether its workflows
have an appointment, and how it fires (``planning``): on a captured change
(``fired`` reads the event), at a time derived from an appointment
(``OFFSET``: ``anchor_column`` plus ``offset``, one job per appointment), or
on a calendar of its own (``RECURRING``: a cron expression, a birthday, a
lapse since the last visit; one job per workflow and target, planned by
:mod:`scheduler.recurring`). A name that is not registered is an error
wherever it is met, never a default.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from db.codes import CapturedTable
from engine.durations import format_duration
from engine.registry import Registry

if TYPE_CHECKING:
    from db.records import Booking, ChangeEvent
    from engine.validation import Checker
    from engine.workflow import Trigger

APPOINTMENTS, CUSTOMERS = CapturedTable.APPOINTMENTS, CapturedTable.CUSTOMERS
# The subject of a schedule's workflows: a staff member's, a location's or the company's agenda.
AGENDAS = "agendas"
# How a trigger is planned: None (it fires on a change), per appointment, or on a calendar of its own.
OFFSET, RECURRING = "offset", "recurring"
# The filters that read an appointment, and the one that reads a customer.
APPOINTMENT_FILTERS = ("locations", "services", "staff", "statuses", "started_by", "locales")
CUSTOMER_FILTERS = ("locales",)


@dataclass(frozen=True, slots=True, kw_only=True)
class Param:
    """One parameter of a trigger and how it is written."""

    # duration | words (a list of strings) | subset (a list from ``choices``, kept in their order) |
    # choice (one of ``choices``) | text (one string, checked by the trigger's ``check``) | flag (true/false)
    form: str
    required: bool = False
    example: str = ""  # said when a required one is missing
    positive: bool = False  # durations: above zero
    choices: tuple[str, ...] = ()


class TriggerType:
    """One kind of trigger. Subclasses declare the class attributes; :func:`register` adds them."""

    name: ClassVar[str]
    params: ClassVar[Mapping[str, Param]] = {}
    # Keywords its templates get besides the booking's and the company's.
    keywords: ClassVar[frozenset[str]] = frozenset()
    # The table of the rows it fires for; a customer trigger's workflows have no appointment, nor
    # have a schedule's (AGENDAS: they list appointments instead).
    subject: ClassVar[str] = APPOINTMENTS
    # How it is planned: None fires on a captured change (:meth:`fired`); OFFSET at the time in
    # ``anchor_column`` plus the ``offset`` parameter, one job per appointment; RECURRING by
    # scheduler/recurring.py, one job per workflow and target (staff member, location, customer).
    planning: ClassVar[str | None] = None
    anchor_column: ClassVar[str | None] = None
    # It fires on a message from the customer, so an answer falls within WhatsApp's 24-hour window in
    # which free text is delivered; every other trigger writes first, which WhatsApp takes only as a template.
    within_conversation: ClassVar[bool] = False
    # The filters its workflows may give (None: those of its subject).
    filters: ClassVar[tuple[str, ...] | None] = None

    @property
    def has_appointment(self) -> bool:
        return self.subject == APPOINTMENTS

    @property
    def planned(self) -> bool:
        return self.planning is not None

    @property
    def allowed_filters(self) -> tuple[str, ...]:
        if self.filters is not None:
            return self.filters
        return APPOINTMENT_FILTERS if self.has_appointment else CUSTOMER_FILTERS

    def parties(self, trigger: Trigger) -> tuple[str, ...]:
        """Which of ``customer`` and ``staff`` a workflow's messages can go to."""
        return ("customer", "staff") if self.has_appointment else ("customer",)

    def keywords_for(self, trigger: Trigger) -> frozenset[str] | None:
        """The keywords a workflow with these parameters offers, where they narrow the trigger's; None: all."""
        return None

    def check(self, check: Checker, params: dict[str, Any]) -> None:
        """Checks across parameters (*check.add* each problem)."""

    def fired(self, event: ChangeEvent) -> dict[str, Any] | None:
        """What this trigger adds to the template context if *event* sets it off, else None."""
        return None

    def admits(self, trigger: Trigger, context: dict[str, Any]) -> bool:
        """Whether a workflow's trigger, with its parameters, takes a firing with *context*."""
        return True

    def sample(self, trigger: Trigger, booking: Booking) -> dict[str, Any]:
        """Plausible values of the trigger's keywords, for ``apptflow workflow test``."""
        return {}

    def anchor(self, booking: Booking) -> dt.datetime:
        """The time a planned trigger counts its offset from."""
        return getattr(booking.appointment, self.anchor_column)

    def export(self, trigger: Trigger) -> dict[str, Any]:
        """The parameters as a document writes them (durations spelt shortest, lists as lists)."""
        written = {}
        for name in self.params:
            value = trigger.params.get(name)
            if isinstance(value, dt.timedelta):
                written[name] = format_duration(value)
            elif value is not None:
                written[name] = list(value) if isinstance(value, tuple) else value
        return written


_TYPES: Registry[TriggerType] = Registry("trigger")


def register(kind: type[TriggerType]) -> type[TriggerType]:
    """Make a trigger known by its name (a class decorator); a name taken twice is an error."""
    if kind.anchor_column is not None and kind.planning is None:
        kind.planning = OFFSET  # an anchor column alone says how it is planned
    _TYPES.add(kind.name, kind())
    return kind


def unregister(name: str) -> None:
    """Forget a trigger (a test's throwaway one)."""
    _TYPES.remove(name)


def trigger_type(name: object) -> TriggerType:
    """The registered trigger called *name*; UnknownType otherwise."""
    return _TYPES.get(name)


def names() -> tuple[str, ...]:
    """Every registered trigger, in registration order."""
    return _TYPES.names()


def all_types() -> tuple[TriggerType, ...]:
    return _TYPES.values()


def param_names() -> tuple[str, ...]:
    """Every parameter some trigger takes, each once."""
    return tuple(dict.fromkeys(name for kind in _TYPES.values() for name in kind.params))
