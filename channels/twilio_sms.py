"""SMS and WhatsApp through Twilio's Messages API, with the ``twilio`` library.

Missing credentials or a missing library do not stop construction: the daemon
starts with the channels it can use, and every send on an unusable channel
raises :class:`~channels.base.ChannelUnavailable` (permanent) saying why.
``unavailable_reason`` tells the same thing up front, for a startup warning.
"""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import urlsplit

import requests

from channels.base import (
    Channel, ChannelUnavailable, Key, PermanentSendError, Receipt, RecipientOptedOut, Section, TransientSendError,
)
from channels.httputil import failure_reason, is_transient_status
from channels.messages import Sms, WhatsApp
from channels.phone import check_e164
from channels.registry import register

try:
    from twilio.base.exceptions import TwilioException, TwilioRestException
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client
except ImportError as error:  # this channel is disabled, the rest of apptflow is not
    _MISSING_LIBRARY = f"the twilio library cannot be imported ({error})"
    TwilioHttpClient = object  # lets the module define its classes all the same
else:
    _MISSING_LIBRARY = ""

logger = logging.getLogger(__name__)

# Every Twilio API host the library may build: api.twilio.com, or with an edge
# and region (TWILIO_EDGE / TWILIO_REGION in the environment) api.dublin.ie1.twilio.com.
_TWILIO_API = re.compile(r"https://api(\.[a-z0-9-]+)*\.twilio\.com(?=/|$)")
_WHATSAPP = "whatsapp:"
_CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")
# Twilio errors that say more than their text: what happened, and what to do.
EXPLAINED = {
    63016: "WhatsApp refused free text outside the 24-hour window after the customer's last message; "
           "send an approved template (content_sid with content_variables) instead",
}
# Twilio's answer to a send to a number that replied STOP to this sender.
OPTED_OUT = 21610
# What the error codes of delivery receipts mean (a status callback gives the code alone).
RECEIPT_ERRORS = {
    "30001": "queue overflow", "30002": "account suspended", "30003": "unreachable handset",
    "30004": "message blocked", "30005": "unknown destination handset", "30006": "landline or unreachable carrier",
    "30007": "filtered by the carrier", "30008": "unknown error", "30034": "unregistered 10DLC number",
    "21610": "the recipient unsubscribed (STOP)", "63016": "outside WhatsApp's 24-hour window",
    "63024": "invalid WhatsApp recipient", "63032": "the user's WhatsApp cannot receive this message",
}


def receipt_error(code: str | None) -> str | None:
    """A receipt's error as the history shows it: ``30003: unreachable handset`` (None without a code)."""
    if not code:
        return None
    return f"{code}: {RECEIPT_ERRORS.get(code, 'see https://www.twilio.com/docs/api/errors/' + code)}"


class _RebasedHttpClient(TwilioHttpClient):
    """Twilio's HTTP client, sending what it addresses to Twilio's API host to ``base_url`` instead."""

    def __init__(self, base_url: str, **kwargs):
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")

    def request(self, method, url, *args, **kwargs):
        rebased = _TWILIO_API.sub(lambda _: self.base_url, url, count=1)
        return super().request(method, rebased, *args, **kwargs)


# Both Twilio channels read [twilio].
SECTION = Section(name="twilio", keys={
    "account_sid": Key(default=""),
    "auth_token": Key(default="", secret=True),
    "from_number": Key(default=""),  # the SMS sender
    "whatsapp_from": Key(default=""),  # the WhatsApp sender
    "api_base_url": Key(default="", kind="url"),  # empty: Twilio's own
})


class _TwilioChannel(Channel):
    """What SMS and WhatsApp share: the client, the checks and the error mapping."""

    max_body = 1600
    section = SECTION

    def __init__(self, *, account_sid: str, auth_token: str, sender: str, api_base_url: str, timeout: float,
                 status_callback: str | None):
        self.account_sid, self.sender, self.api_base_url = account_sid, sender, api_base_url
        self.status_callback = status_callback
        self.unavailable_reason = _unavailable_reason(account_sid, auth_token, sender)
        self._client = None
        if not self.unavailable_reason:
            self._client = Client(account_sid, auth_token, http_client=_http_client(api_base_url, timeout))

    def describe(self) -> str:
        where = f" via {self.api_base_url}" if self.api_base_url else ""
        return f"{self.name} (twilio account {self.account_sid or '?'}, from {self.sender or '?'}){where}"

    def close(self) -> None:
        if self._client is not None and self._client.http_client.session is not None:
            self._client.http_client.session.close()

    def _create(self, **fields) -> Receipt:
        if self._client is None:
            raise ChannelUnavailable(f"{self.name}: {self.unavailable_reason}")
        if self.status_callback:
            fields["status_callback"] = self.status_callback
        try:
            created = self._client.messages.create(**fields)
        except TwilioRestException as error:
            raise _rest_error(self.name, error.status, error.code, error.msg) from None
        except requests.RequestException as error:
            raise TransientSendError(f"{self.name}: {failure_reason(error)}") from None
        except TwilioException as error:  # an unreadable answer: the message may not exist
            status = getattr(error, "status", 0) or 0
            raise _rest_error(self.name, status, getattr(error, "code", None), str(error)) from None
        logger.info("%s: twilio accepted %s (%s)", self.name, created.sid, created.status)
        return Receipt(provider_id=created.sid, detail=str(created.status or ""))


@register
class TwilioSmsChannel(_TwilioChannel):
    """Sends :class:`~channels.messages.Sms` from ``from_number`` (E.164, or a messaging service ``MG…``)."""

    name = "twilio-sms"
    message_type = Sms

    @classmethod
    def configured(cls, settings, common):
        return cls(account_sid=settings["account_sid"], auth_token=settings["auth_token"],
                   from_number=settings["from_number"], api_base_url=settings["api_base_url"],
                   status_callback=common.status_callback_url)

    def __init__(
        self, *, account_sid: str = "", auth_token: str = "", from_number: str = "",
        api_base_url: str = "", timeout: float = 30.0, status_callback: str | None = None,
    ):
        """``api_base_url``: empty for Twilio's own API, else e.g. ``http://127.0.0.1:8080`` (tests);
        ``status_callback``: where Twilio reports the message's delivery (None: nowhere)."""
        super().__init__(
            account_sid=account_sid, auth_token=auth_token, sender=from_number,
            api_base_url=api_base_url, timeout=timeout, status_callback=status_callback,
        )

    def check(self, message: Sms) -> None:
        self.check_body(message.body)
        check_e164(message.to)

    def send(self, message: Sms) -> Receipt:
        """Send one SMS; Receipt.provider_id is the message SID."""
        self.check(message)
        return self._create(to=message.to, body=message.body, **_sender_fields(self.sender))


@register
class TwilioWhatsAppChannel(_TwilioChannel):
    """Sends :class:`~channels.messages.WhatsApp` from the WhatsApp sender ``whatsapp_from`` (E.164)."""

    name = "twilio-whatsapp"
    message_type = WhatsApp

    @classmethod
    def configured(cls, settings, common):
        return cls(account_sid=settings["account_sid"], auth_token=settings["auth_token"],
                   whatsapp_from=settings["whatsapp_from"], api_base_url=settings["api_base_url"],
                   status_callback=common.status_callback_url)

    def __init__(
        self, *, account_sid: str = "", auth_token: str = "", whatsapp_from: str = "",
        api_base_url: str = "", timeout: float = 30.0, status_callback: str | None = None,
    ):
        """``api_base_url``: empty for Twilio's own API, else e.g. ``http://127.0.0.1:8080`` (tests);
        ``status_callback``: where Twilio reports the message's delivery (None: nowhere)."""
        super().__init__(
            account_sid=account_sid, auth_token=auth_token, sender=whatsapp_from,
            api_base_url=api_base_url, timeout=timeout, status_callback=status_callback,
        )

    def check(self, message: WhatsApp) -> None:
        if message.content_sid:
            _content_sid(message.content_sid)
        else:
            self.check_body(message.body)
        _whatsapp(message.to)
        for url in message.media:
            _media_url(url)

    def send(self, message: WhatsApp) -> Receipt:
        """Send one WhatsApp message: free text (with its media URLs) or an approved template with its
        variables (as JSON, as Twilio takes them); Receipt.provider_id is the message SID."""
        self.check(message)
        to, sender = _whatsapp(message.to), _whatsapp(self.sender)
        if message.content_sid:
            return self._create(to=to, from_=sender, content_sid=message.content_sid,
                                content_variables=json.dumps(message.content_variables, ensure_ascii=False))
        media = [_media_url(url) for url in message.media]
        return self._create(to=to, from_=sender, body=message.body, media_url=media or None)


def sender_of(from_: str) -> tuple[str, str]:
    """The opt-out list an incoming message's sender is on (``sms``, or ``whatsapp`` for a
    ``whatsapp:+E164`` sender) and its number."""
    if from_.startswith(_WHATSAPP):
        return "whatsapp", from_[len(_WHATSAPP):]
    return "sms", from_


def _unavailable_reason(account_sid: str, auth_token: str, sender: str) -> str:
    if _MISSING_LIBRARY:
        return _MISSING_LIBRARY
    missing = [name for name, value in
               (("account_sid", account_sid), ("auth_token", auth_token), ("sender number", sender))
               if not value]
    return f"twilio is not configured (no {', '.join(missing)})" if missing else ""


def _http_client(api_base_url: str, timeout: float):
    # No retries inside the library: retrying is the engine's decision (TwilioHttpClient's default).
    if api_base_url:
        return _RebasedHttpClient(api_base_url, timeout=timeout)
    return TwilioHttpClient(timeout=timeout)


def _sender_fields(sender: str) -> dict:
    if sender.startswith("MG"):
        return {"messaging_service_sid": sender}
    return {"from_": sender}


def _whatsapp(number: str) -> str:
    """``+E164`` or ``whatsapp:+E164`` → ``whatsapp:+E164``, checked."""
    bare = number[len(_WHATSAPP):] if number.startswith(_WHATSAPP) else number
    return _WHATSAPP + check_e164(bare)


def _media_url(url: str) -> str:
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise PermanentSendError(f"whatsapp media must be an http(s) URL: {url!r}")
    return url


def _content_sid(sid: str) -> str:
    if not _CONTENT_SID.fullmatch(sid):
        raise PermanentSendError(f"not a Twilio content template id (HX and 32 hexadecimal digits): {sid!r}")
    return sid


def _rest_error(channel: str, status: int, code, text: str) -> Exception:
    """429 and 5xx (or no status at all): try later; other 4xx, and the errors explained, which no
    retry changes: Twilio will refuse it again."""
    explained = EXPLAINED.get(code)
    number = str(code) if code is not None else None
    if code == OPTED_OUT:
        return RecipientOptedOut(f"{channel}: twilio error {code}: the recipient unsubscribed from this sender "
                                 f"(replied STOP) ({text})", code=number)
    if explained:
        return PermanentSendError(f"{channel}: twilio error {code}: {explained} ({text})", code=number)
    error = TransientSendError if not status or is_transient_status(status) else PermanentSendError
    return error(f"{channel}: twilio answered HTTP {status}, error {code}: {text}", code=number)
