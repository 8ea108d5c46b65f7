"""A channel that sends nothing: it records each message, for ``[daemon] dry_run`` and the demo.

Given the real channel (*checker*), it first runs every check the real send
would (recipients, sizes, attachments with their rules and the address
guard) and fails as it would; only the transmission is left out, and with it
the provider's credentials, which a dry run does not need.
"""

from __future__ import annotations

import logging
import threading
import uuid

from channels.base import Channel, Receipt

logger = logging.getLogger(__name__)


class DryRunChannel(Channel):
    """Records every message in ``sent`` (in order, safe across worker threads) instead of sending it."""

    max_body = None

    def __init__(self, name: str, checker: Channel | None = None):
        """``name``: the channel this one stands in for (``smtp``, ``twilio-sms``, …)."""
        self.name = name
        self.checker = checker
        self.sent: list = []
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"{self.name} (dry run)"

    def send(self, message) -> Receipt:
        """Check ``message`` as the real channel would, record it, and return a made-up provider id."""
        if self.checker is not None:
            self.checker.check(message)
        receipt = Receipt(provider_id=f"dry-run-{uuid.uuid4().hex}")
        with self._lock:
            self.sent.append(message)
        logger.info("%s: dry run, recorded %s as %s", self.name, type(message).__name__, receipt.provider_id)
        return receipt

    def close(self) -> None:
        close = getattr(self.checker, "close", None)
        if close is not None:
            close()
