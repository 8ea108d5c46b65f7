"""A throwaway action type and its channel, written as the architecture's recipe says (docs/architecture.md):
``page`` sends a short text to each number of ``to`` through a ``pager`` service with a ``[pager]`` section.

Test code only: nothing of apptflow's production code names it. :func:`install` registers both and
:func:`uninstall` forgets them, so the other tests see apptflow's own types alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels import registry as channel_registry
from channels.base import Channel, Key, PermanentSendError, Receipt, Section
from engine import actions
from engine.actions import ActionType, FieldSpec
from engine.actions.base import HOLD, REQUIRED_TEMPLATE
from engine.recipients import PHONE, resolve
from engine.templates import render


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """The pager's message."""

    number: str
    text: str
    key: str  # the same on every attempt of a delivery

    def summary(self) -> str:
        return f"page to {self.number}: {self.text!r}"


class PagerChannel(Channel):
    """Keeps what it is given in ``pages``; refuses a page over 160 characters, as a pager would."""

    name = "pager"
    message_type = Page
    section = Section(name="pager", keys={"prefix": Key(default="[apptflow]"),
                                          "token": Key(default="", secret=True)})
    max_body = 160
    built: list[PagerChannel] = []  # every instance, for the test to look into

    def __init__(self, *, prefix: str, token: str):
        self.prefix, self.token = prefix, token
        self.pages: list[Page] = []
        self.checked = 0
        PagerChannel.built.append(self)

    @classmethod
    def configured(cls, settings, common):
        return cls(prefix=settings["prefix"], token=settings["token"])

    def check(self, message: Page) -> None:
        self.checked += 1
        self.check_body(message.text)
        if not message.number.startswith("+"):
            raise PermanentSendError(f"pager: {message.number!r} is not a number")

    def send(self, message: Page) -> Receipt:
        self.check(message)
        self.pages.append(Page(number=message.number, text=f"{self.prefix} {message.text}", key=message.key))
        return Receipt(provider_id=f"page-{len(self.pages)}")


class PageAction(ActionType):
    name = "page"
    fields = {"to": FieldSpec(form="recipients", required=True, address=PHONE), "text": REQUIRED_TEMPLATE}
    per_recipient = "to"
    after_crash = HOLD

    def check(self, check, fields, place, known):
        if isinstance(fields.get("text"), str) and len(fields["text"]) > 500:
            check.add(f"{place}.text", "a page is short: at most 500 characters of template")

    def render(self, fields, booking, context, recipient):
        return {"to": resolve(fields["to"][recipient], booking, context, PHONE),
                "text": render(fields["text"], context).strip()}

    def describe(self, rendered):
        return f"pager {rendered['to']}"

    def channel(self, rendered):
        return "pager"

    def message(self, rendered, *, stable_id, delivery_id):
        return {"number": rendered["to"], "text": rendered["text"], "key": stable_id}


def install() -> None:
    actions.register(PageAction)
    channel_registry.register(PagerChannel)


def uninstall() -> None:
    actions.unregister(PageAction.name)
    channel_registry.unregister(PagerChannel.name)
    PagerChannel.built.clear()
