"""Telegram through the Bot API (``sendMessage``, ``sendDocument``), with ``requests``.

The bot token is part of every request path, so this module keeps it out of
everything it writes: log lines (including urllib3's, which log paths at
DEBUG), exception messages (requests' name the URL: they are never chained
here) and :meth:`TelegramChannel.describe`.

A message with text and attachments is sent as the text, then one document
per attachment. Attachments are all loaded first, so a missing file sends
nothing; a failure between two requests may resend the text on retry (the
at-least-once guarantee).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import requests

from channels import attachments
from channels.base import Channel, ChannelUnavailable, Key, PermanentSendError, Receipt, Section, TransientSendError
from channels.httputil import (
    failure_reason, is_transient_status, new_session, redact_bot_paths_in_urllib3_logs,
)
from channels.messages import Telegram
from channels.registry import register

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.telegram.org"


@register
class TelegramChannel(Channel):
    """Sends :class:`~channels.messages.Telegram` to a chat id or ``@channel`` as one bot."""

    name = "telegram"
    message_type = Telegram
    max_body = 4096
    section = Section(name="telegram", keys={
        "bot_token": Key(default="", secret=True),
        "api_url": Key(default=DEFAULT_API_URL, kind="url"),
        # read the chats' messages with getUpdates (long polling), as replies (docs/replies.md)
        "receive_replies": Key(default=False, kind="flag", live=False),
    })

    @classmethod
    def configured(cls, settings, common):
        return cls(bot_token=settings["bot_token"], api_url=settings["api_url"],
                   attachment_dir=common.attachment_dir,
                   allow_private_addresses=common.attachments_allow_private_addresses)

    def __init__(
        self, *, bot_token: str = "", api_url: str = DEFAULT_API_URL, timeout: float = 30.0,
        attachment_dir: str | None = None, max_attachment_bytes: int = attachments.DEFAULT_MAX_BYTES,
        allow_private_addresses: bool = False,
    ):
        """``api_url``: the Bot API server (a local one for tests or a self-hosted Bot API).

        ``allow_private_addresses``: let attachment URLs reach loopback and
        private networks; off, they are refused (see :mod:`channels.netguard`).
        The Bot API itself is the operator's choice and is not restricted.
        """
        self._token = bot_token
        self.api_url = (api_url or DEFAULT_API_URL).rstrip("/")
        self.timeout = timeout
        self.attachment_dir, self.max_attachment_bytes = attachment_dir, max_attachment_bytes
        self.allow_private_addresses = allow_private_addresses
        self._http = new_session()
        # Attachment URLs come from templates: their downloads get a session of their own, guarded.
        self._files = attachments.guarded_session(allow_private_addresses=allow_private_addresses)
        redact_bot_paths_in_urllib3_logs()

    def describe(self) -> str:
        where = "" if self.api_url == DEFAULT_API_URL else f" via {self.api_url}"
        return f"telegram (bot ***){where}"

    def close(self) -> None:
        self._http.close()
        self._files.close()

    def check(self, message: Telegram) -> None:
        self._prepare(message)

    def _prepare(self, message: Telegram) -> list[attachments.Attachment]:
        """The checks before sending; the attachments, loaded and checked."""
        self.check_body(message.text)
        if not message.text and not message.attachments:
            raise PermanentSendError("telegram: the message has neither text nor attachments")
        return attachments.load_all(
            message.attachments, directory=self.attachment_dir,
            max_bytes=self.max_attachment_bytes, timeout=self.timeout, session=self._files,
            allow_private_addresses=self.allow_private_addresses,
        )

    def send(self, message: Telegram) -> Receipt:
        """Send the text, then each attachment as a document; Receipt.provider_id is the first message id."""
        if not self._token:
            raise ChannelUnavailable("telegram: no bot token configured")
        documents = self._prepare(message)
        ids = []
        if message.text:
            ids.append(self._call("sendMessage", json={"chat_id": message.chat_id, "text": message.text}))
        for document in documents:
            ids.append(self._call(
                "sendDocument", data={"chat_id": message.chat_id},
                files={"document": (document.filename, document.data, document.content_type)},
            ))
        logger.info("telegram: sent %d message(s) to chat %s", len(ids), message.chat_id)
        return Receipt(provider_id=ids[0], detail=" ".join(ids[1:]))

    def updates(self, offset: int, wait: float) -> list[Update]:
        """The text messages sent to the bot from *offset* on (``getUpdates``, waiting up to *wait* seconds for
        one): asking from an offset confirms every update before it, which Telegram then forgets."""
        if not self._token:
            raise ChannelUnavailable("telegram: no bot token configured")
        url = f"{self.api_url}/bot{self._token}/getUpdates"
        payload = {"offset": offset, "timeout": int(wait), "allowed_updates": ["message"]}
        try:
            with self._http.post(url, json=payload, timeout=self.timeout + wait) as response:
                answer = _answer(response)
                if response.status_code != 200 or not answer.get("ok"):
                    raise _api_error("getUpdates", response.status_code, answer)
        except requests.RequestException as error:
            reason = failure_reason(error).replace(self._token, "***")
            raise TransientSendError(f"telegram getUpdates: {reason}") from None
        return [_update(item) for item in answer.get("result") or () if isinstance(item, dict)]

    def _call(self, method: str, **payload) -> str:
        """POST one Bot API method and return the message id it created."""
        url = f"{self.api_url}/bot{self._token}/{method}"
        try:
            with self._http.post(url, timeout=self.timeout, **payload) as response:
                return _message_id(method, response)
        except requests.RequestException as error:
            reason = failure_reason(error).replace(self._token, "***")
            raise TransientSendError(f"telegram {method}: {reason}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Update:
    """One update read with getUpdates: a text message from a chat, or something else (``text`` None)."""

    update_id: int
    chat_id: str | None = None
    text: str | None = None


def _update(item: dict) -> Update:
    message = item.get("message") if isinstance(item.get("message"), dict) else {}
    chat = message.get("chat") if isinstance(message.get("chat"), dict) else {}
    text = message.get("text")
    return Update(update_id=int(item.get("update_id", 0)),
                  chat_id=str(chat["id"]) if "id" in chat else None,
                  text=text if isinstance(text, str) else None)


def _answer(response: requests.Response) -> dict:
    try:
        answer = response.json()
    except ValueError:
        answer = None
    return answer if isinstance(answer, dict) else {}


def _message_id(method: str, response: requests.Response) -> str:
    answer = _answer(response)
    if response.status_code == 200 and answer.get("ok"):
        try:
            return str(answer["result"]["message_id"])
        except (KeyError, TypeError):
            pass
    raise _api_error(method, response.status_code, answer)


def _api_error(method: str, status: int, answer: dict) -> Exception:
    """429 (with its retry_after) and 5xx: later; any other refusal (bad chat id, blocked bot): never."""
    description = answer.get("description") or "no description"
    retry_after = (answer.get("parameters") or {}).get("retry_after")
    hint = f" (retry after {retry_after} s)" if retry_after else ""
    if is_transient_status(status) or status == 200:  # 200 without ok: an answer we cannot read
        return TransientSendError(f"telegram {method}: HTTP {status}: {description}{hint}")
    return PermanentSendError(f"telegram {method}: HTTP {status}: {description}")
