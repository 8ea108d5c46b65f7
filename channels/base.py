"""The channel interface: ``send(message) -> Receipt``, or a transient or permanent error."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar


class ChannelError(Exception):
    """A message could not be sent."""

    def __init__(self, message: str | None = None):
        super().__init__(message or self.__doc__)


class TransientSendError(ChannelError):
    """Sending failed for a reason that may pass (network, timeout, 429, 5xx, SMTP 4xx): retry later."""


class PermanentSendError(ChannelError):
    """Sending failed for a reason that will not pass (bad recipient, rejected request): do not retry."""


class ChannelUnavailable(PermanentSendError):
    """The channel is not configured or its library is missing."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    """What the provider answered: its message id, if it gives one."""

    provider_id: str | None
    detail: str = ""


class Channel(ABC):
    """One transport. Subclasses declare their name and limits as class attributes."""

    name: ClassVar[str]
    # The longest body the provider accepts (characters), if it has a limit.
    max_body: ClassVar[int | None] = None

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
