"""Webhooks: one HTTP(S) request per message, signed the Standard Webhooks way, through the SSRF guard.

Every request carries ``webhook-id`` (the delivery id, stable across retries,
so a receiver can drop duplicates) and ``webhook-timestamp`` (unix seconds).
With a secret, it also carries ``webhook-signature: v1,<base64 HMAC-SHA256>``
of ``"{webhook-id}.{webhook-timestamp}.{body}"`` (https://www.standardwebhooks.com/).
The HMAC key is, as the specification has it, the base64-decoded part after
``whsec_`` for a secret with that prefix, otherwise the secret's UTF-8 bytes.

Redirects are not followed by default: a 3xx is a permanent error saying
where it pointed. Targets are checked by :mod:`channels.netguard`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

import requests
from requests.structures import CaseInsensitiveDict

from channels.base import Channel, Key, PermanentSendError, Receipt, Section, TransientSendError
from channels.httputil import REFUSED_REQUESTS, failure_reason, is_transient_status, new_session, origin
from channels.messages import Webhook
from channels.netguard import GuardedAdapter, pick_address
from channels.registry import register

logger = logging.getLogger(__name__)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
_SECRET_PREFIX = "whsec_"
# Response headers a receiver may use to name what it created, best first.
_ID_HEADERS = ("X-Request-Id", "Request-Id", "X-Message-Id")
_EXCERPT = 200
# An answer up to this long is read to its end so its connection can be reused.
_DRAIN_LIMIT, _DRAIN_CHUNK = 64 * 1024, 16 * 1024


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: base64 after ``whsec_``, else the UTF-8 bytes."""
    if not secret.startswith(_SECRET_PREFIX):
        return secret.encode("utf-8")
    try:
        return base64.b64decode(secret[len(_SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret starting with 'whsec_' must continue in base64") from None


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one request."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


@register
class WebhookChannel(Channel):
    """Sends :class:`~channels.messages.Webhook` requests."""

    name = "webhook"
    message_type = Webhook
    section = Section(name="webhook", keys={
        "secret": Key(default="", secret=True),  # non-empty: sign requests (Standard Webhooks)
        "allow_private_addresses": Key(default=False, kind="flag"),
        "timeout": Key(default="15s", kind="duration", low="100ms", high="10m"),
    })

    @classmethod
    def configured(cls, settings, common):
        return cls(secret=settings["secret"], allow_private_addresses=settings["allow_private_addresses"],
                   timeout=settings["timeout"].total_seconds())

    def __init__(
        self, *, secret: str = "", allow_private_addresses: bool = False, timeout: float = 15.0,
        follow_redirects: bool = False, ca_file: str | None = None,
        clock: Callable[[], float] = time.time,
    ):
        """``ca_file``: a PEM bundle to trust instead of the system's; ``clock`` gives webhook-timestamp."""
        self._key = signing_key(secret) if secret else None
        self.allow_private_addresses = allow_private_addresses
        self.timeout, self.follow_redirects, self._clock = timeout, follow_redirects, clock
        self._verify = ca_file or True
        self._http = new_session()
        self._http.trust_env = False  # no proxy: it would resolve the name again, past the guard
        adapter = GuardedAdapter(allow_private=allow_private_addresses)
        self._http.mount("http://", adapter)
        self._http.mount("https://", adapter)

    def describe(self) -> str:
        signed = "signed" if self._key is not None else "unsigned"
        private = ", private addresses allowed" if self.allow_private_addresses else ""
        return f"webhook ({signed}{private})"

    def close(self) -> None:
        self._http.close()

    def check(self, message: Webhook) -> None:
        """The method, the URL, and the address guard's verdict on the host (resolved, not connected to)."""
        _method(message.method)
        _checked_origin(message.url)
        parts = urlsplit(message.url)
        pick_address(parts.hostname, parts.port or (443 if parts.scheme.lower() == "https" else 80),
                     allow_private=self.allow_private_addresses)

    def send(self, message: Webhook) -> Receipt:
        """Make the request; Receipt.provider_id is the receiver's id header or the delivery id."""
        method, where = _method(message.method), _checked_origin(message.url)
        body = message.body.encode("utf-8")
        webhook_id = message.delivery_id or f"msg_{uuid.uuid4().hex}"
        headers = self._headers(message, webhook_id, body)
        try:
            with self._http.request(
                method, message.url, data=body, headers=headers, stream=True, verify=self._verify,
                timeout=message.timeout or self.timeout, allow_redirects=self.follow_redirects,
            ) as response:
                return _receipt(response, webhook_id, where)
        except requests.TooManyRedirects:
            raise PermanentSendError(f"webhook to {where}: too many redirects") from None
        except REFUSED_REQUESTS as error:  # its message quotes the bad URL or header: it may hold a token
            raise PermanentSendError(f"webhook to {where}: {type(error).__name__}") from None
        except requests.RequestException as error:
            raise TransientSendError(f"webhook to {where}: {failure_reason(error)}") from None

    def _headers(self, message: Webhook, webhook_id: str, body: bytes) -> CaseInsensitiveDict:
        headers = CaseInsensitiveDict(message.headers)
        headers.setdefault("Content-Type", message.content_type)
        timestamp = int(self._clock())
        headers["webhook-id"], headers["webhook-timestamp"] = webhook_id, str(timestamp)
        if self._key is not None:
            headers["webhook-signature"] = sign(self._key, webhook_id, timestamp, body)
        return headers


def _method(method: str) -> str:
    method = (method or "POST").upper()
    if method not in METHODS:
        raise PermanentSendError(f"webhook: unsupported HTTP method {method!r}")
    return method


def _checked_origin(url: str) -> str:
    """``scheme://host[:port]`` of a valid http(s) URL, for messages; PermanentSendError otherwise."""
    try:
        parts = urlsplit(url)
        if parts.scheme.lower() in ("http", "https") and parts.hostname:
            return origin(url)
    except ValueError:  # a malformed IPv6 literal or port
        pass
    # The URL itself stays out of the message: its query may carry a token.
    raise PermanentSendError("webhook: not an http(s) URL with a host")


def _receipt(response: requests.Response, webhook_id: str, where: str) -> Receipt:
    status = response.status_code
    if 200 <= status < 300:
        _drain(response)
        provider_id = next((response.headers[h] for h in _ID_HEADERS if response.headers.get(h)), webhook_id)
        logger.debug("webhook: %s answered %d for %s", where, status, webhook_id)  # the worker logs the send
        return Receipt(provider_id=provider_id, detail=str(status))
    if 300 <= status < 400:
        location = response.headers.get("Location", "")
        target = origin(urljoin(response.url, location)) if location else "nowhere"
        raise PermanentSendError(f"webhook to {where}: HTTP {status}, a redirect to {target} (not followed)")
    error = TransientSendError if is_transient_status(status) else PermanentSendError
    raise error(f"webhook to {where}: HTTP {status}: {_excerpt(response)}")


def _drain(response: requests.Response) -> None:
    """Read a short answer to its end, so the connection goes back to the pool (keep-alive).

    A streamed response closed unread closes its connection: every webhook
    would pay for a new TCP (and TLS) handshake. A long answer is not read:
    its connection is dropped instead.
    """
    read = 0
    for chunk in response.iter_content(_DRAIN_CHUNK):
        read += len(chunk)
        if read > _DRAIN_LIMIT:
            return


def _excerpt(response: requests.Response) -> str:
    """The start of the answer's body, for the delivery log; the rest is never read."""
    raw = next(response.iter_content(_EXCERPT), b"")[:_EXCERPT]
    return raw.decode("utf-8", "replace").strip() or "(empty body)"
