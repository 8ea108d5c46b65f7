"""The channels the daemon sends through, built from the configuration, and rendered dict → message."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from channels import Channel, ChannelUnavailable, Receipt
from channels.messages import Email, Sms, Telegram, Webhook, WhatsApp
from db.records import Delivery
from scheduler.config import Config, seconds

logger = logging.getLogger(__name__)


def _optional(value: str) -> str | None:
    return value or None


def _builders(config: Config) -> dict[str, Callable[[], Channel]]:
    """One constructor per channel name; called on first use, so a broken one disables only itself."""
    smtp, twilio, sns = config.section("smtp"), config.section("twilio"), config.section("sns")
    telegram, webhook, daemon = config.section("telegram"), config.section("webhook"), config.section("daemon")
    attachment_dir = _optional(daemon["attachment_dir"])
    private_attachments = daemon["attachments_allow_private_addresses"]

    def smtp_channel():
        from channels.smtp import SmtpChannel
        return SmtpChannel(host=smtp["host"], port=smtp["port"], security=smtp["security"],
                           username=smtp["username"], password=smtp["password"], sender=smtp["from"],
                           timeout=seconds(smtp["timeout"]), attachment_dir=attachment_dir,
                           allow_private_addresses=private_attachments)

    def twilio_sms():
        from channels.twilio_sms import TwilioSmsChannel
        return TwilioSmsChannel(account_sid=twilio["account_sid"], auth_token=twilio["auth_token"],
                                from_number=twilio["from_number"], api_base_url=twilio["api_base_url"])

    def twilio_whatsapp():
        from channels.twilio_sms import TwilioWhatsAppChannel
        return TwilioWhatsAppChannel(account_sid=twilio["account_sid"], auth_token=twilio["auth_token"],
                                     whatsapp_from=twilio["whatsapp_from"], api_base_url=twilio["api_base_url"])

    def sns_sms():
        from channels.sns import SnsSmsChannel
        return SnsSmsChannel(region=sns["region"], endpoint_url=sns["endpoint_url"],
                             access_key_id=sns["access_key_id"], secret_access_key=sns["secret_access_key"])

    def telegram_channel():
        from channels.telegram import TelegramChannel
        return TelegramChannel(bot_token=telegram["bot_token"], api_url=telegram["api_url"],
                               attachment_dir=attachment_dir, allow_private_addresses=private_attachments)

    def webhook_channel():
        from channels.webhook import WebhookChannel
        return WebhookChannel(secret=webhook["secret"], allow_private_addresses=webhook["allow_private_addresses"],
                              timeout=seconds(webhook["timeout"]))

    return {"smtp": smtp_channel, "twilio-sms": twilio_sms, "twilio-whatsapp": twilio_whatsapp,
            "sns-sms": sns_sms, "telegram": telegram_channel, "webhook": webhook_channel}


def channel_name(action_type: str, rendered: dict[str, Any]) -> str:
    """Which channel carries a rendered action."""
    if action_type == "sms":
        return "sns-sms" if rendered.get("provider") == "sns" else "twilio-sms"
    return {"email": "smtp", "whatsapp": "twilio-whatsapp", "telegram": "telegram", "webhook": "webhook"}[action_type]


def _stable_id(delivery: Delivery) -> str:
    return hashlib.sha256(delivery.idempotency_key.encode()).hexdigest()[:24]


def to_message(action_type: str, rendered: dict[str, Any], delivery: Delivery):
    """The channel message for a rendered action; ids derive from the delivery, stable across retries."""
    if action_type == "email":
        return Email(to=tuple(rendered["to"]), cc=tuple(rendered["cc"]), bcc=tuple(rendered["bcc"]),
                     subject=rendered["subject"], text=rendered["text"], html=rendered["html"],
                     attachments=tuple(rendered["attachments"]),
                     message_id=f"<{_stable_id(delivery)}.{delivery.id}@apptflow>")
    if action_type == "sms":
        return Sms(to=rendered["to"], body=rendered["body"])
    if action_type == "whatsapp":
        return WhatsApp(to=rendered["to"], body=rendered["body"], media=tuple(rendered["media"]))
    if action_type == "telegram":
        return Telegram(chat_id=rendered["chat_id"], text=rendered["text"],
                        attachments=tuple(rendered["attachments"]))
    return Webhook(url=rendered["url"], method=rendered["method"], headers=dict(rendered["headers"]),
                   body=rendered["body"], content_type=rendered["content_type"],
                   delivery_id=f"msg_{_stable_id(delivery)}",
                   timeout=seconds(rendered["timeout"]) if rendered.get("timeout") else None)


class Transports:
    """Sends rendered actions through their channels; with ``dry_run``, records them instead."""

    def __init__(self, config: Config, *, dry_run: bool | None = None,
                 observer: Callable[[Delivery, Any, Receipt], None] | None = None):
        self.dry_run = config.get("daemon", "dry_run") if dry_run is None else dry_run
        self._builders = _builders(config)
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
        try:
            channel = self._builders[name]()
        except (ImportError, ValueError, ChannelUnavailable) as error:
            self._broken[name] = f"{name} is unavailable: {error}"
            logger.error("%s", self._broken[name])
            raise ChannelUnavailable(self._broken[name]) from None
        if self.dry_run:  # the real channel checks each message; nothing is transmitted
            from channels.dryrun import DryRunChannel
            return DryRunChannel(name, checker=channel)
        logger.info("channel ready: %s", channel.describe())
        return channel

    def send(self, action_type: str, rendered: dict[str, Any], delivery: Delivery) -> Receipt:
        """Send one rendered action; channel errors propagate to the worker."""
        message = to_message(action_type, rendered, delivery)
        receipt = self.channel(channel_name(action_type, rendered)).send(message)
        if self.observer is not None:
            self.observer(delivery, message, receipt)
        return receipt

    def close(self) -> None:
        for channel in self._channels.values():
            close = getattr(channel, "close", None)
            if close is not None:
                close()
