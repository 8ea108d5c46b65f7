"""Email over SMTP with the standard library: plain, STARTTLS or implicit TLS, optional login."""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from channels import attachments, calendar
from channels.base import Channel, Key, PermanentSendError, Receipt, Section, TransientSendError
from channels.messages import Email
from channels.registry import register

logger = logging.getLogger(__name__)

SECURITIES = ("none", "starttls", "ssl")
INVITE_FILE = "invite.ics"
# Deliberately loose: the server is the judge of an address; this only stops
# what is certainly not one (no "@", spaces, several addresses in one entry).
_ADDR_SPEC = re.compile(r"[^@\s,;<>()\[\]\"]+@[^@\s,;<>()\[\]\"]+")


@register
class SmtpChannel(Channel):
    """Sends :class:`~channels.messages.Email` through one SMTP server."""

    name = "smtp"
    message_type = Email
    section = Section(name="smtp", keys={
        "host": Key(default="localhost"),
        "port": Key(default=25, kind="count", low=1, high=65535),
        "security": Key(default="none", kind="choice", choices=SECURITIES),
        "username": Key(default=""),
        "password": Key(default="", secret=True),
        "from": Key(default="Bookings <bookings@example.com>", kind="mail_address"),
        "timeout": Key(default="30s", kind="duration", low="100ms", high="10m"),
    })

    @classmethod
    def configured(cls, settings, common):
        return cls(host=settings["host"], port=settings["port"], security=settings["security"],
                   username=settings["username"], password=settings["password"], sender=settings["from"],
                   timeout=settings["timeout"].total_seconds(), attachment_dir=common.attachment_dir,
                   allow_private_addresses=common.attachments_allow_private_addresses)

    def __init__(
        self,
        *,
        host: str = "localhost",
        port: int = 25,
        security: str = "none",
        username: str = "",
        password: str = "",
        sender: str,
        timeout: float = 30.0,
        attachment_dir: str | None = None,
        max_attachment_bytes: int = attachments.DEFAULT_MAX_BYTES,
        ca_file: str | None = None,
        allow_private_addresses: bool = False,
    ):
        """``ca_file``: a PEM bundle to trust instead of the system's (a private mail relay).

        ``allow_private_addresses``: let attachment URLs reach loopback and
        private networks (tests, an intranet file server); off, they are
        refused like a webhook's (see :mod:`channels.netguard`).
        """
        if security not in SECURITIES:
            raise ValueError(f"smtp security must be one of {SECURITIES}, not {security!r}")
        self.host, self.port, self.security = host, port, security
        self.username, self._password = username, password
        try:
            self.sender = _mailbox(sender)
        except PermanentSendError as error:
            raise ValueError(f"smtp sender: {error}") from None
        self.timeout = timeout
        self.attachment_dir, self.max_attachment_bytes = attachment_dir, max_attachment_bytes
        self.allow_private_addresses = allow_private_addresses
        self._tls = ssl.create_default_context(cafile=ca_file)
        self._http = attachments.guarded_session(allow_private_addresses=allow_private_addresses)

    def describe(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"smtp://{user}{self.host}:{self.port} ({self.security})"

    def close(self) -> None:
        self._http.close()

    def check(self, message: Email) -> None:
        self._prepare(message)

    def _prepare(self, message: Email) -> tuple[EmailMessage, list[str]]:
        """The email as it will be sent (attachments loaded and checked) and its envelope recipients."""
        recipients = [a.addr_spec for a in map(_mailbox, (*message.to, *message.cc, *message.bcc))]
        if not recipients:
            raise PermanentSendError("smtp: the email has no recipient")
        return self._compose(message), recipients

    def send(self, message: Email) -> Receipt:
        """Send one email; Receipt.provider_id is its Message-ID."""
        email, recipients = self._prepare(message)
        refused = self._deliver(email, recipients)
        if refused:
            # Sent to the others: a retry would duplicate it for them, so this is a success.
            logger.warning("smtp: %d recipient(s) of %s refused", len(refused), email["Message-ID"])
        logger.info("smtp: sent %s to %d recipient(s)", email["Message-ID"], len(recipients) - len(refused))
        return Receipt(provider_id=email["Message-ID"], detail=_refused_detail(refused))

    def _compose(self, message: Email) -> EmailMessage:
        try:
            email = EmailMessage()
            email["From"] = self.sender
            email["To"] = [_mailbox(a) for a in message.to]
            if message.cc:
                email["Cc"] = [_mailbox(a) for a in message.cc]
            # Bcc recipients go in the envelope only, never in a header.
            email["Subject"] = message.subject
            email["Date"] = format_datetime(datetime.now(timezone.utc))
            email["Message-ID"] = _message_id(message.message_id, self.sender.domain)
            email.set_content(message.text)
            if message.html is not None:
                email.add_alternative(message.html, subtype="html")
        except ValueError as error:  # a CR/LF in a header, an unencodable value
            raise PermanentSendError(f"smtp: cannot build the email: {error}") from None
        if message.calendar is not None:
            self._invite(email, message.calendar)
        for item in self._attachments(message.attachments):
            maintype, _, subtype = item.content_type.partition("/")
            email.add_attachment(item.data, maintype=maintype, subtype=subtype, filename=item.filename)
        return email

    def _invite(self, email: EmailMessage, invite) -> None:
        """The invite as the last alternative (``text/calendar; method=…``, which mail clients show as an
        invitation with its buttons) and again as the attachment ``invite.ics`` (``application/ics``, for
        clients that only import files), as the big calendar services send theirs."""
        text = calendar.ics(invite, organizer_address=self.sender.addr_spec,
                            organizer_name=invite.organizer or self.sender.display_name,
                            stamp=datetime.now(timezone.utc))
        data = text.encode()  # bytes keep iCalendar's CRLF line ends
        email.add_alternative(data, maintype="text", subtype="calendar",
                              params={"method": invite.method, "charset": "utf-8", "name": INVITE_FILE})
        email.add_attachment(data, maintype="application", subtype="ics", filename=INVITE_FILE)

    def _attachments(self, sources) -> list[attachments.Attachment]:
        return attachments.load_all(
            sources, directory=self.attachment_dir, max_bytes=self.max_attachment_bytes,
            timeout=self.timeout, session=self._http, allow_private_addresses=self.allow_private_addresses,
        )

    def _deliver(self, email: EmailMessage, recipients: list[str]) -> dict:
        try:
            with self._connect() as smtp:
                if self.username:
                    smtp.login(self.username, self._password)
                return smtp.send_message(email, from_addr=self.sender.addr_spec, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as error:
            raise _refused_error(error.recipients) from None
        except smtplib.SMTPResponseException as error:
            raise _reply_error(error.smtp_code, error.smtp_error) from None
        except smtplib.SMTPNotSupportedError as error:
            raise PermanentSendError(f"smtp: {self.describe()}: {error}") from None
        except ssl.SSLCertVerificationError as error:
            raise PermanentSendError(f"smtp: {self.describe()}: {error.verify_message}") from None
        except (smtplib.SMTPException, OSError) as error:  # disconnects, refusals, timeouts, TLS
            raise TransientSendError(f"smtp: {self.describe()}: {type(error).__name__}: {error}") from None

    def _connect(self) -> smtplib.SMTP:
        if self.security == "ssl":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._tls)
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.security == "starttls":
            try:
                smtp.starttls(context=self._tls)
            except BaseException:
                smtp.close()
                raise
        return smtp


def _mailbox(value: str) -> Address:
    """Parse ``addr@example.com`` or ``Name <addr@example.com>``; PermanentSendError if it is neither."""
    name, addr_spec = parseaddr(value or "")
    if not _ADDR_SPEC.fullmatch(addr_spec) or value.count("@") != 1:
        raise PermanentSendError(f"not an email address: {value!r}")
    try:
        return Address(display_name=name, addr_spec=addr_spec)
    except (ValueError, IndexError) as error:
        raise PermanentSendError(f"not an email address: {value!r} ({error})") from None


def _message_id(given: str | None, domain: str) -> str:
    if not given:
        return make_msgid(domain=domain or None)
    given = given.strip()
    return given if given.startswith("<") else f"<{given}>"


def _reply_error(code: int, text: bytes | str) -> Exception:
    """5xx: the server will never take this message; 4xx (or a garbled reply): try later."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    error = PermanentSendError if 500 <= code < 600 else TransientSendError
    return error(f"smtp: the server replied {code} {text}")


def _refused_error(refused: dict) -> Exception:
    """Every recipient was refused: permanent only if every refusal was (5xx)."""
    if all(500 <= code < 600 for code, _ in refused.values()):
        return PermanentSendError(f"smtp: every recipient was refused: {_refused_detail(refused)}")
    return TransientSendError(f"smtp: every recipient was refused for now: {_refused_detail(refused)}")


def _refused_detail(refused: dict) -> str:
    return "; ".join(
        f"{addr}: {code} {text.decode('utf-8', 'replace') if isinstance(text, bytes) else text}"
        for addr, (code, text) in refused.items()
    )
