"""What an action type is, and the registry that looks one up by name.

Each action type is one module of :mod:`engine.actions` declaring everything
about it: its fields and their checks, which field holds its recipients and of
what kind, whether a send interrupted by a crash is resent or held, how it
renders to the fields of its channel's message, which channel sends it, and how
the history describes it. The rest of apptflow looks the type up here; a name
that is not registered is an error wherever it is met, never a default.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from engine.registry import Registry
from engine.recipients import Address

if TYPE_CHECKING:
    from db.records import Booking, KnownIds
    from engine.triggers import TriggerType
    from engine.validation import Checker

RESEND, HOLD = "resend", "hold"


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldSpec:
    """How one field of an action is written and checked."""

    # template | recipients | template_list | choice | duration | offset (a signed duration) | headers | json |
    # url | variables (a mapping of names to templates) | literal (text matching ``pattern``, no template) |
    # window (a send window: from/to times of day, or false)
    form: str
    required: bool = False
    address: Address | None = None  # for recipients: what kind of address each entry gives
    choices: tuple[str, ...] = ()
    # A text written to the customer: it may also be a mapping of locale to text with a `default`
    # (engine/variants.py chooses one per booking); for `variables`, each value may.
    variants: bool = False
    pattern: str = ""  # for literal: what the text must match (a regular expression)
    example: str = ""  # for literal: said when it does not


TEMPLATE = FieldSpec(form="template")
REQUIRED_TEMPLATE = FieldSpec(form="template", required=True)
# The texts a customer reads: one template, or one per locale.
TEXT = FieldSpec(form="template", variants=True)
REQUIRED_TEXT = FieldSpec(form="template", required=True, variants=True)
TEMPLATE_LIST = FieldSpec(form="template_list")
# Every action may say what happens to a send interrupted by a crash: `resend` it, or `hold` it as
# `unknown` for an admin. Each type has its default (ActionType.after_crash).
AFTER_CRASH = FieldSpec(form="choice", choices=(RESEND, HOLD))
# Every action may have quiet hours: `{from: "09:00", to: "21:00"}` on the recipient's clock, or `false` for
# none where `[workflows] send_window` gives a default (engine/quiet_hours.py).
SEND_WINDOW = FieldSpec(form="window")


@dataclass(frozen=True, slots=True, kw_only=True)
class UrlGuard:
    """A field holding URLs (one, or a list) that may not point at a private address unless allowed."""

    field: str
    what: str  # "webhooks", for the message
    setting: tuple[str, str]  # the configuration key that allows them: ("webhook", "allow_private_addresses")


class ActionType(ABC):
    """One kind of action. Subclasses declare the class attributes and render; :func:`register` adds them."""

    name: ClassVar[str]
    fields: ClassVar[Mapping[str, FieldSpec]]
    # The recipient field each entry of which is a delivery of its own (one message per person), if any.
    per_recipient: ClassVar[str | None] = None
    # What becomes of a send interrupted by a crash, unless the action says (RESEND or HOLD).
    after_crash: ClassVar[str] = RESEND
    # It acts on the appointment: a workflow whose trigger has none cannot have it.
    needs_appointment: ClassVar[bool] = False
    # It changes the appointment's status in the database instead of sending through a channel.
    changes_status: ClassVar[bool] = False
    url_guards: ClassVar[tuple[UrlGuard, ...]] = ()
    # A message a person reads: when it is not delivered, message_undelivered can fall back to another.
    to_person: ClassVar[bool] = False
    # Its recipient is a phone number on this opt-out list (docs/replies.md): a number that sent STOP is
    # skipped before anything reaches the provider.
    optout_channel: ClassVar[str | None] = None
    # The configuration section of the provider a customer's answer to it comes through (twilio: SMS and
    # WhatsApp; telegram), matched by the address it went to (conversation_address).
    replies_via: ClassVar[str | None] = None

    def field_specs(self) -> dict[str, FieldSpec]:
        """Every field the type takes, in the order a document writes them."""
        return {**self.fields, "after_crash": AFTER_CRASH, "send_window": SEND_WINDOW}

    def check(self, check: Checker, fields: dict[str, Any], place: str, known: KnownIds | None) -> None:
        """Checks across fields, or against the database's known ids and statuses (*check.add* each problem)."""

    def advise(self, fields: dict[str, Any], trigger: TriggerType) -> list[tuple[str, str]]:
        """Warnings that do not make the workflow invalid: (field, message) for what will likely be refused
        when it is sent (``workflow add`` and ``validate`` print them)."""
        return []

    @abstractmethod
    def render(self, fields: dict[str, Any], booking: Booking, context: dict[str, Any],
               recipient: int | None) -> dict[str, Any]:
        """The rendered action (for recipient entry *recipient* on a per-recipient type): plain JSON data,
        stored with the delivery. Data that cannot render is a RenderError."""

    @abstractmethod
    def describe(self, rendered: dict[str, Any]) -> str:
        """Who or what a rendered action goes to, for the history."""

    def channel(self, rendered: dict[str, Any]) -> str:
        """The name of the channel that sends a rendered action."""
        raise NotImplementedError(f"{self.name} is not sent through a channel")

    def conversation_address(self, rendered: dict[str, Any]) -> str | None:
        """The number or chat id a reply to a rendered message would come from (types with replies_via)."""
        return None

    def message(self, rendered: dict[str, Any], *, stable_id: str, delivery_id: int) -> dict[str, Any]:
        """The fields of the channel's message for a rendered action; *stable_id* is the same on every
        attempt of the delivery, for the headers a receiver recognises a resent message by."""
        return dict(rendered)


_TYPES: Registry[ActionType] = Registry("action")


def register(kind: type[ActionType]) -> type[ActionType]:
    """Make an action type known by its name (a class decorator); a name taken twice is an error."""
    _TYPES.add(kind.name, kind())
    return kind


def unregister(name: str) -> None:
    """Forget an action type (a test's throwaway one)."""
    _TYPES.remove(name)


def action_type(name: object) -> ActionType:
    """The registered action type called *name*; UnknownType otherwise."""
    return _TYPES.get(name)


def names() -> tuple[str, ...]:
    """Every registered action type, in registration order."""
    return _TYPES.names()


def replied_via(source: str | None = None) -> tuple[str, ...]:
    """The action types whose messages a reply through *source* (a provider's section: twilio, telegram)
    answers; without *source*, every one a reply can answer."""
    return tuple(name for name, kind in _TYPES.items()
                 if kind.replies_via is not None and source in (None, kind.replies_via))


def to_persons() -> tuple[str, ...]:
    """The action types that send a message a person reads."""
    return tuple(name for name, kind in _TYPES.items() if kind.to_person)
