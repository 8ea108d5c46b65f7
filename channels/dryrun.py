"""A channel that sends nothing: it records each message, for ``[daemon] dry_run`` and the demo."""

from __future__ import annotations

import logging
import threading
import uuid

from channels.base import Channel, Receipt

logger = logging.getLogger(__name__)


class DryRunChannel(Channel):
    """Records every message in ``sent`` (in order, safe across worker threads) instead of sending it."""

    max_body = None

    def __init__(self, name: str):
        """``name``: the channel this one stands in for (``smtp``, ``twilio-sms``, …)."""
        self.name = name
        self.sent: list = []
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"{self.name} (dry run)"

    def send(self, message) -> Receipt:
        """Record ``message`` and return a made-up provider id."""
        receipt = Receipt(provider_id=f"dry-run-{uuid.uuid4().hex}")
        with self._lock:
            self.sent.append(message)
        logger.info("%s: dry run, recorded %s as %s", self.name, type(message).__name__, receipt.provider_id)
        return receipt
