"""Real servers on loopback for the channel tests: HTTP stand-ins, an SMTP server, TLS files.

Each server records what it received, answers from a script when one is
queued, and shuts down completely (threads, sockets) when stopped, so no
ResourceWarning escapes under ``filterwarnings = error``.
"""

from __future__ import annotations

import base64
import datetime
import itertools
import json
import ssl
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def form(self) -> dict[str, list[str]]:
        """The body as an application/x-www-form-urlencoded form."""
        return parse_qs(self.body.decode(), keep_blank_values=True)

    def json(self):
        return json.loads(self.body)

    def multipart(self) -> dict[str, tuple[str | None, bytes]]:
        """The body as multipart/form-data: field name → (filename, raw bytes)."""
        head = f"Content-Type: {self.headers['content-type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + self.body)
        return {
            part.get_param("name", header="content-disposition"): (
                part.get_filename(), part.get_payload(decode=True)
            )
            for part in message.iter_parts()
        }


@dataclass(kw_only=True)
class Reply:
    """What the server answers: a status, headers, a body; ``hang`` waits that long before answering."""

    status: int = 200
    body: bytes | str | dict | list = b""
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0
    # False: no Content-Length, the body ends when the connection closes.
    declare_length: bool = True

    def encoded(self) -> bytes:
        if isinstance(self.body, (dict, list)):
            self.headers.setdefault("Content-Type", "application/json")
            return json.dumps(self.body).encode()
        return self.body.encode() if isinstance(self.body, str) else self.body


Route = Callable[[Request], Reply]


class HttpServer:
    """A threaded HTTP/1.0 server on 127.0.0.1: records requests, answers from ``script`` then ``route``."""

    def __init__(self, route: Route = lambda request: Reply(), *, tls: "TlsFiles | None" = None):
        self.route, self.scheme = route, "https" if tls else "http"
        self.requests: list[Request] = []
        self.script: deque[Reply] = deque()
        # Set at stop: a handler told to hang stops hanging, so no thread outlives the test.
        self.released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.handle_error = _ignore_disconnects(self._server.handle_error)
        if tls:
            self._server.socket = server_tls_context(tls).wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01})

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> "HttpServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def answer(self, request: Request) -> Reply:
        self.requests.append(request)
        return self.script.popleft() if self.script else self.route(request)


def _handler_for(server: HttpServer):
    class Handler(BaseHTTPRequestHandler):
        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                method=self.command, path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length),
            )
            reply = server.answer(request)
            if reply.hang:
                server.released.wait(reply.hang)
            body = reply.encoded()
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.declare_length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        def log_message(self, format, *args):  # quiet: pytest shows stderr of failures only
            pass

    return Handler


def _ignore_disconnects(handle_error):
    """A client that gave up (a timeout test) is expected; anything else is still reported."""

    def handle(request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            handle_error(request, client_address)

    return handle


# --- API stand-ins: Twilio, Telegram, SNS errors ---------------------------------------------

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "twilio-auth-token-0123456789"
SMS_FROM = "+15005550006"
WHATSAPP_FROM = "+14155238886"
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
_twilio_sids = itertools.count(1)


def twilio_api(request):
    """Twilio's Messages resource, as far as the channel uses it."""
    if request.method != "POST" or request.path != MESSAGES_PATH:
        return twilio_error(404, 20404, "The requested resource was not found")
    expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    if request.headers.get("authorization") != expected:
        return twilio_error(401, 20003, "Authenticate")
    form = request.form
    return Reply(status=201, body={
        "sid": f"SM{next(_twilio_sids):032x}", "account_sid": ACCOUNT_SID, "status": "queued",
        "to": form["To"][0], "from": form.get("From", [None])[0], "body": form.get("Body", [""])[0],
    })


def twilio_error(status, code, message):
    """An error answer the way Twilio writes them."""
    return Reply(status=status, body={"code": code, "message": message, "status": status,
                                      "more_info": f"https://www.twilio.com/docs/errors/{code}"})


BOT_TOKEN = "123456789:AAE-telegram-bot-token_0123456789abc"
_telegram_ids = itertools.count(100)


def bot_api(request):
    """sendMessage (JSON) and sendDocument (multipart) for one bot, as the Bot API answers them."""
    prefix = f"/bot{BOT_TOKEN}/"
    if not request.path.startswith(prefix):
        return bot_error(401, "Unauthorized")
    method = request.path[len(prefix):]
    if method == "sendMessage":
        chat_id, text = request.json()["chat_id"], request.json()["text"]
    elif method == "sendDocument":
        chat_id, text = request.multipart()["chat_id"][1].decode(), None
    else:
        return bot_error(404, "Not Found")
    message = {"message_id": next(_telegram_ids), "chat": {"id": chat_id}, "text": text}
    return Reply(body={"ok": True, "result": message})


def bot_error(status, description, **parameters):
    """An error answer the way the Bot API writes them."""
    body = {"ok": False, "error_code": status, "description": description}
    return Reply(status=status, body={**body, "parameters": parameters} if parameters else body)


def sns_error(status, kind, code, message):
    """An error answer the way SNS (AWS query protocol) writes them."""
    return Reply(status=status, headers={"Content-Type": "text/xml"}, body=(
        '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
        f"<Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        "<RequestId>5d1f0b86-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
    ))


# --- SMTP -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Envelope:
    """One mail transaction as the SMTP server saw it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    login: str | None


class SmtpRecorder:
    """An aiosmtpd handler recording envelopes; ``refuse`` and ``data_reply`` inject server errors."""

    def __init__(self):
        self.envelopes: list[Envelope] = []
        self.refuse: dict[str, str] = {}  # recipient → reply, e.g. "550 5.1.1 no such user"
        self.data_reply: str | None = None  # e.g. "451 4.3.0 try again later"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        login = session.auth_data.login.decode() if session.auth_data else None
        self.envelopes.append(Envelope(
            mail_from=envelope.mail_from, rcpt_tos=tuple(envelope.rcpt_tos),
            content=envelope.original_content, login=login,
        ))
        return "250 OK queued"


def smtp_controller(handler, **smtp_options):
    """An aiosmtpd Controller on 127.0.0.1 and a free port (read back once it listens)."""
    from aiosmtpd.controller import Controller

    class FreePortController(Controller):
        def _trigger_server(self):
            self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    return FreePortController(handler, hostname="127.0.0.1", port=0, **smtp_options)


def password_authenticator(users: dict[str, str]):
    """An aiosmtpd authenticator accepting exactly ``users`` (login → password)."""
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            users.get(auth_data.login.decode()) == auth_data.password.decode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return authenticate


# --- TLS --------------------------------------------------------------------------------------

TLS_NAME = "hooks.apptflow.test"


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsFiles:
    """A throwaway CA and a server certificate for ``localhost``, ``hooks.apptflow.test`` and 127.0.0.1 (PEM)."""

    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Issue a CA and a server certificate with ``cryptography`` (installed with moto)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject, issuer, public_key, signing_key, *, ca, names=()):
        builder = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "apptflow test CA")])
    ca_cert = certificate(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    names = (x509.DNSName("localhost"), x509.DNSName(TLS_NAME), x509.IPAddress(ip_address("127.0.0.1")))
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    leaf = certificate(leaf_name, ca_name, key.public_key(), ca_key, ca=False, names=names)
    files = TlsFiles(ca=directory / "ca.pem", cert=directory / "cert.pem", key=directory / "key.pem")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return files


def server_tls_context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert, files.key)
    return context
