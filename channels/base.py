"""The channel interface: ``send(message) -> Receipt``, or a transient or permanent error."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


class ChannelError(Exception):
    """A message could not be sent."""

    def __init__(self, message: str | None = None, *, code: str | None = None):
        super().__init__(message or self.__doc__)
        self.code = code  # the provider's code for the failure, when it gives one (Twilio's 21610)


class TransientSendError(ChannelError):
    """Sending failed for a reason that may pass (network, timeout, 429, 5xx, SMTP 4xx): retry later."""


class PermanentSendError(ChannelError):
    """Sending failed for a reason that will not pass (bad recipient, rejected request): do not retry."""


class ChannelUnavailable(PermanentSendError):
    """The channel is not configured or its library is missing."""


class RecipientOptedOut(PermanentSendError):
    """The recipient has unsubscribed from messages of this sender."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    """What the provider answered: its message id, if it gives one."""

    provider_id: str | None
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Key:
    """One key of a channel's configuration section, as the configuration file writes it.

    ``kind`` says how the value is read and checked: ``text``, ``url`` (http or https, or empty),
    ``mail_address``, ``flag``, ``count`` or ``duration`` (within ``low``..``high``), ``choice``
    (one of ``choices``). A channel's keys are live (a reload rebuilds the channel) unless said."""

    default: Any
    kind: str = "text"
    secret: bool = False
    live: bool = True
    low: Any = None
    high: Any = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Section:
    """A channel's configuration section (``[smtp]``); several channels of one provider may share one."""

    name: str
    keys: Mapping[str, Key] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Common:
    """What every channel is told from outside its own section: where attachments may come from
    (``[daemon]``), and where a provider sends its delivery receipts (``[inbound]``)."""

    attachment_dir: str | None = None
    attachments_allow_private_addresses: bool = False
    # The public URL of the daemon's status callback endpoint; None: no receipts are asked for.
    status_callback_url: str | None = None


class Channel(ABC):
    """One transport. Subclasses declare their name, message type, configuration section and limits as
    class attributes, and build themselves from their section's values (:meth:`configured`)."""

    name: ClassVar[str]
    # The message it sends (a dataclass of channels.messages, or a channel's own).
    message_type: ClassVar[type]
    # The configuration section it reads; None: it needs none.
    section: ClassVar[Section | None] = None
    # The longest body the provider accepts (characters), if it has a limit.
    max_body: ClassVar[int | None] = None

    @classmethod
    def configured(cls, settings: Mapping[str, Any], common: Common) -> Channel:
        """The channel as its section's *settings* (typed values) and *common* say."""
        return cls()

    @abstractmethod
    def send(self, message) -> Receipt:
        """Send one rendered message; raise TransientSendError or PermanentSendError on failure."""

    def describe(self) -> str:
        """A one-line description for logs, never containing a credential."""
        return self.name

    def close(self) -> None:
        """Release pooled connections; the channel must not be used afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def check(self, message) -> None:
        """Every check :meth:`send` makes before it transmits (recipients, sizes, attachments, the
        address guard), raising as send would; nothing is sent. A dry run calls it."""

    def check_body(self, body: str) -> None:
        """Refuse a body longer than the provider accepts: it would be refused on every retry."""
        if self.max_body is not None and len(body) > self.max_body:
            raise PermanentSendError(
                f"{self.name}: the body is {len(body)} characters, the limit is {self.max_body}"
            )
