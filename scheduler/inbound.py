"""The inbound endpoint: Twilio's status callbacks and incoming messages, served on ``[inbound] listen``.

Served with the standard library's ``wsgiref`` in a thread per request (``socketserver.ThreadingMixIn``),
the way ``prometheus_client`` serves the metrics: HTTP is parsed by a library that has done it for
decades, no dependency is added, and the two routes need nothing a framework would bring. TLS is the
reverse proxy's (docs/replies.md): Twilio reaches ``[inbound] public_url`` over https, the proxy passes
the request to this loopback port.

Every request must carry Twilio's ``X-Twilio-Signature`` for ``[twilio] auth_token``, computed over the
public URL (which is why it is configured: the daemon behind its proxy cannot see it); one without is
answered 403 and changes nothing. A body over :data:`MAX_BODY` is refused before it is read. Twilio is
answered with an empty TwiML ``<Response/>``: a reply is never answered by the endpoint itself (a
workflow may answer it, through the outbox).
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from channels.twilio_sms import SECTION as TWILIO_SECTION
from channels.twilio_sms import receipt_error, sender_of
from db.errors import describe, unavailable
from scheduler.conversation import TWILIO, Conversation

logger = logging.getLogger(__name__)

STATUS_PATH, INBOUND_PATH = "/twilio/status", "/twilio/inbound"
# Twilio's largest request (an incoming WhatsApp message with ten media URLs) is a few kilobytes.
MAX_BODY = 64 * 1024
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
FORM = "application/x-www-form-urlencoded"


class InboundError(Exception):
    """The inbound endpoint cannot be served as configured."""


class _Refused(Exception):
    """A request answered with an HTTP error, and why."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status


class _Form(dict):
    """A form's fields, each a list of values, as the twilio library's validator reads a MultiDict."""

    def getall(self, name: str) -> list[str]:
        return self[name]

    def one(self, name: str, *, required: bool = True) -> str:
        values = self.get(name) or [""]
        if required and not values[0]:
            raise _Refused("400 Bad Request", f"no {name}")
        return values[0]


class InboundEndpoint:
    """The WSGI application: checks each request, hands it to the :class:`Conversation`."""

    def __init__(self, *, public_url: str, auth_token: str, conversation: Conversation,
                 clock: Callable[[], dt.datetime]):
        from twilio.request_validator import RequestValidator

        self.public_url = public_url.rstrip("/")
        self.prefix = urlsplit(self.public_url).path
        self.validator = RequestValidator(auth_token)
        self.conversation = conversation
        self.clock = clock
        self._routes = {STATUS_PATH: self._status, INBOUND_PATH: self._inbound}

    def __call__(self, environ, start_response):
        try:
            route, suffix = self._route(environ)
            form = self._form(environ)
            self._check_signature(environ, suffix, form)
            route(form)
        except _Refused as refused:
            logger.warning("inbound: %s %s refused (%s): %s", environ.get("REQUEST_METHOD"),
                           environ.get("PATH_INFO"), refused.status, refused)
            return _answer(start_response, refused.status, f"{refused}\n".encode(), "text/plain; charset=utf-8")
        except Exception as error:  # noqa: BLE001 - one request's failure is its own
            if unavailable(error):
                logger.warning("inbound: the database is unavailable (%s); Twilio is told to try again",
                               describe(error))
                return _answer(start_response, "503 Service Unavailable", b"try again\n", "text/plain")
            logger.exception("inbound: %s failed", environ.get("PATH_INFO"))
            return _answer(start_response, "500 Internal Server Error", b"failed\n", "text/plain")
        return _answer(start_response, "200 OK", EMPTY_TWIML, "text/xml")

    def _route(self, environ) -> tuple[Callable[[_Form], None], str]:
        path = environ.get("PATH_INFO") or "/"
        # Under the public URL's path, or without it where the proxy strips it.
        suffix = path[len(self.prefix):] if self.prefix and path.startswith(self.prefix + "/") else path
        if suffix not in self._routes:
            raise _Refused("404 Not Found", f"no such endpoint (known: {', '.join(self._routes)})")
        if environ.get("REQUEST_METHOD") != "POST":
            raise _Refused("405 Method Not Allowed", "only POST")
        return self._routes[suffix], suffix

    @staticmethod
    def _form(environ) -> _Form:
        length = environ.get("CONTENT_LENGTH") or ""
        if not length.isdigit():
            raise _Refused("411 Length Required", "a Content-Length is required")
        if int(length) > MAX_BODY:
            raise _Refused("413 Content Too Large", f"the body is over {MAX_BODY} bytes")
        if (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower() != FORM:
            raise _Refused("415 Unsupported Media Type", f"expected {FORM}")
        body = environ["wsgi.input"].read(int(length))
        try:
            return _Form(parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body)))
        except (UnicodeDecodeError, ValueError):
            raise _Refused("400 Bad Request", "the body is not a UTF-8 form") from None

    def _check_signature(self, environ, suffix: str, form: _Form) -> None:
        from twilio.request_validator import get_signature_algorithm

        signature = environ.get("HTTP_X_TWILIO_SIGNATURE")
        if not signature:
            raise _Refused("403 Forbidden", "no X-Twilio-Signature")
        query = environ.get("QUERY_STRING")
        url = self.public_url + suffix + (f"?{query}" if query else "")
        algorithm = get_signature_algorithm(environ.get("HTTP_X_TWILIO_WEBHOOKS_SIGNATURE_SETTINGS"))
        if not self.validator.validate(url, form, signature, algorithm):
            raise _Refused("403 Forbidden", f"the X-Twilio-Signature is not [twilio] auth_token's for {url}")

    def _status(self, form: _Form) -> None:
        self.conversation.receipt(provider_id=form.one("MessageSid"), status=form.one("MessageStatus").lower(),
                                  error=receipt_error(form.one("ErrorCode", required=False)), now=self.clock())

    def _inbound(self, form: _Form) -> None:
        channel, sender = sender_of(form.one("From"))
        self.conversation.message(source=TWILIO, channel=channel, sender=sender,
                                  body=form.one("Body", required=False), provider_id=form.one("MessageSid"),
                                  now=self.clock())


def _answer(start_response, status: str, body: bytes, content_type: str) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        logger.debug("inbound: %s - %s", self.address_string(), format % args)


def serve(config, conversation: Conversation, clock: Callable[[], dt.datetime]) -> InboundServer | None:
    """The endpoint ``[inbound]`` configures, started; None when ``listen`` is empty."""
    inbound = config.section("inbound")
    if not inbound["listen"]:
        return None
    endpoint = InboundEndpoint(public_url=inbound["public_url"],
                               auth_token=config.get(TWILIO_SECTION.name, "auth_token"),
                               conversation=conversation, clock=clock)
    server = InboundServer(inbound["listen"], endpoint)
    server.start()
    logger.info("serving Twilio's callbacks on %s for %s", inbound["listen"], inbound["public_url"])
    return server


def status_callback_url(config) -> str | None:
    """Where Twilio is asked to post the receipts of SMS and WhatsApp messages (None: nowhere)."""
    public_url = config.get("inbound", "public_url")
    return public_url.rstrip("/") + STATUS_PATH if public_url else None


class InboundServer:
    """Serves an :class:`InboundEndpoint` on ``host:port`` in a thread of its own."""

    def __init__(self, listen: str, endpoint: InboundEndpoint):
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
        try:
            self._server = make_server(host, int(port), endpoint, server_class=server_class,
                                       handler_class=_QuietHandler)
        except OSError as error:
            raise InboundError(f"[inbound] listen: cannot listen on {listen}: {error.strerror or error}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="apptflow-inbound", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
