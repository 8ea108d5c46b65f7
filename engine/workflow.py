"""The workflow model: frozen values for a trigger, its filters and its actions.

The fields each action type takes are declared once, in :data:`ACTION_FIELDS`;
validation (:mod:`engine.validation`) and export (:mod:`engine.document`) both
read them from there.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

EVENT_TRIGGERS = (
    "appointment_created",
    "appointment_rescheduled",
    "appointment_status_changed",
    "customer_created",
)
OFFSET_TRIGGERS = ("appointment_starts", "appointment_ends")
TRIGGER_TYPES = EVENT_TRIGGERS + OFFSET_TRIGGERS

DEFAULT_GRACE = dt.timedelta(hours=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldSpec:
    """How one field of an action is written and checked."""

    kind: str  # template | recipients | template_list | choice | duration | headers | json | url
    required: bool = False
    recipient: str = ""  # for recipients: email | phone | chat
    choices: tuple[str, ...] = ()


_TEMPLATE = FieldSpec(kind="template")
_REQUIRED_TEMPLATE = FieldSpec(kind="template", required=True)
_LIST = FieldSpec(kind="template_list")

ACTION_FIELDS: dict[str, dict[str, FieldSpec]] = {
    "email": {
        "to": FieldSpec(kind="recipients", required=True, recipient="email"),
        "cc": FieldSpec(kind="recipients", recipient="email"),
        "bcc": FieldSpec(kind="recipients", recipient="email"),
        "subject": _REQUIRED_TEMPLATE,
        "body": _REQUIRED_TEMPLATE,
        "html": _TEMPLATE,
        "attachments": _LIST,
    },
    "sms": {
        "provider": FieldSpec(kind="choice", choices=("twilio", "sns")),
        "to": FieldSpec(kind="recipients", required=True, recipient="phone"),
        "body": _REQUIRED_TEMPLATE,
    },
    "whatsapp": {
        "to": FieldSpec(kind="recipients", required=True, recipient="phone"),
        "body": _REQUIRED_TEMPLATE,
        "media": _LIST,
    },
    "telegram": {
        "chat_id": FieldSpec(kind="recipients", required=True, recipient="chat"),
        "text": _REQUIRED_TEMPLATE,
        "attachments": _LIST,
    },
    "set_status": {
        "status": _REQUIRED_TEMPLATE,
    },
    "webhook": {
        "url": FieldSpec(kind="url", required=True),
        "method": FieldSpec(kind="choice", choices=("POST", "PUT", "PATCH", "GET", "DELETE")),
        "headers": FieldSpec(kind="headers"),
        "body": _TEMPLATE,
        "json": FieldSpec(kind="json"),
        "timeout": FieldSpec(kind="duration"),
    },
}
# Every action may say what happens to a send interrupted by a crash: `resend`
# it (the default where a duplicate is harmless or recognised by the receiver:
# email with its Message-ID, webhooks with their webhook-id, set_status) or
# `hold` it as `unknown` for an admin (the default for SMS, WhatsApp, Telegram).
for _fields in ACTION_FIELDS.values():
    _fields["after_crash"] = FieldSpec(kind="choice", choices=("resend", "hold"))
HOLD_AFTER_CRASH = ("sms", "whatsapp", "telegram")
ACTION_TYPES = tuple(ACTION_FIELDS)

FILTER_IDS = ("locations", "services", "staff")
FILTER_WORDS = ("statuses", "started_by", "locales")
FILTER_NAMES = FILTER_IDS + FILTER_WORDS
STARTED_BY = ("frontend", "backend")


@dataclass(frozen=True, slots=True, kw_only=True)
class Trigger:
    """What makes a workflow run."""

    type: str
    offset: dt.timedelta | None = None  # time-offset triggers
    grace: dt.timedelta | None = None  # time-offset triggers; None = DEFAULT_GRACE
    from_statuses: tuple[str, ...] | None = None  # status_changed; None = any
    to_statuses: tuple[str, ...] | None = None
    on: tuple[str, ...] | None = None  # rescheduled: which changes count (RESCHEDULE_ASPECTS); None = all

    @property
    def is_time_offset(self) -> bool:
        return self.type in OFFSET_TRIGGERS


# What "rescheduled" means, as in Booknetic: a change of the time, the staff, the location or the service.
RESCHEDULE_ASPECTS = ("time", "staff", "location", "service")


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """Conditions that must all hold; None means the filter is not given."""

    locations: tuple[int, ...] | None = None
    services: tuple[int, ...] | None = None
    staff: tuple[int, ...] | None = None
    statuses: tuple[str, ...] | None = None
    started_by: tuple[str, ...] | None = None
    locales: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """One step of a workflow; ``fields`` holds the normalised fields of its type."""

    type: str
    fields: dict[str, Any] = field(default_factory=dict)
    id: int | None = None  # the workflow_actions row, once stored


@dataclass(frozen=True, slots=True, kw_only=True)
class Workflow:
    """A trigger, optional filters and an ordered list of actions."""

    name: str
    trigger: Trigger
    filters: Filters = Filters()
    actions: tuple[Action, ...] = ()
    enabled: bool = True
    id: int | None = None
