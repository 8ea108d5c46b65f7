"""The channels the daemon sends through, built from the configuration, and rendered action → message.

Which channel carries an action, and the fields of its message, are the action
type's to say (:mod:`engine.actions`); how a channel is built from its
configuration section is the channel's (:mod:`channels.registry`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from channels import Channel, ChannelUnavailable, Receipt
from channels import registry as channel_registry
from channels.base import Common
from db.records import Delivery
from engine.actions import action_type
from scheduler.config import Config
from scheduler.inbound import status_callback_url

logger = logging.getLogger(__name__)


def _common(config: Config) -> Common:
    daemon = config.section("daemon")
    return Common(attachment_dir=daemon["attachment_dir"] or None,
                  attachments_allow_private_addresses=daemon["attachments_allow_private_addresses"],
                  status_callback_url=status_callback_url(config))


def channel_name(type_name: str, rendered: dict[str, Any]) -> str:
    """Which channel carries a rendered action."""
    return action_type(type_name).channel(rendered)


def _stable_id(delivery: Delivery) -> str:
    return hashlib.sha256(delivery.idempotency_key.encode()).hexdigest()[:24]


def to_message(type_name: str, rendered: dict[str, Any], delivery: Delivery):
    """The channel message for a rendered action; ids derive from the delivery, stable across retries."""
    kind = action_type(type_name)
    message_type = channel_registry.channel_class(kind.channel(rendered)).message_type
    return message_type(**kind.message(rendered, stable_id=_stable_id(delivery), delivery_id=delivery.id))


class Transports:
    """Sends rendered actions through their channels; with ``dry_run``, records them instead."""

    def __init__(self, config: Config, *, dry_run: bool | None = None,
                 observer: Callable[[Delivery, Any, Receipt], None] | None = None):
        self.dry_run = config.get("daemon", "dry_run") if dry_run is None else dry_run
        self.config = config
        self._channels: dict[str, Channel] = {}
        self._broken: dict[str, str] = {}
        self._lock = threading.Lock()
        self.observer = observer

    def channel(self, name: str) -> Channel:
        """The channel called *name*, built on first use; ChannelUnavailable if it cannot be."""
        with self._lock:
            if name in self._broken:
                raise ChannelUnavailable(self._broken[name])
            if name not in self._channels:
                self._channels[name] = self._build(name)
            return self._channels[name]

    def _build(self, name: str) -> Channel:
        """Built on first use, so a broken channel disables only itself."""
        try:
            cls = channel_registry.channel_class(name)
            section = cls.section
            channel = cls.configured(self.config.section(section.name) if section else {}, _common(self.config))
        except (ImportError, ValueError, LookupError, ChannelUnavailable) as error:
            self._broken[name] = f"{name} is unavailable: {error}"
            logger.error("%s", self._broken[name])
            raise ChannelUnavailable(self._broken[name]) from None
        if self.dry_run:  # the real channel checks each message; nothing is transmitted
            from channels.dryrun import DryRunChannel
            return DryRunChannel(name, checker=channel)
        logger.info("channel ready: %s", channel.describe())
        return channel

    def send(self, type_name: str, rendered: dict[str, Any], delivery: Delivery) -> Receipt:
        """Send one rendered action; channel errors propagate to the worker."""
        message = to_message(type_name, rendered, delivery)
        receipt = self.channel(channel_name(type_name, rendered)).send(message)
        if self.observer is not None:
            self.observer(delivery, message, receipt)
        return receipt

    def close(self) -> None:
        for channel in self._channels.values():
            close = getattr(channel, "close", None)
            if close is not None:
                close()
