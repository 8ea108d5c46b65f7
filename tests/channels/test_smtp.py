"""Email goes through smtplib to a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import email
import socket
from email import policy

import pytest

from channels.base import PermanentSendError, TransientSendError
from channels.messages import Email
from channels.smtp import SmtpChannel
from tests.channels.servers import Reply, password_authenticator, server_tls_context

SENDER = "Bookings <bookings@example.com>"


@pytest.fixture
def channel_for():
    """A factory: ``channel_for(controller, **options)`` builds an SmtpChannel closed after the test."""
    made = []

    def build(controller, **options):
        options.setdefault("sender", SENDER)
        options.setdefault("timeout", 5.0)
        made.append(SmtpChannel(host="127.0.0.1", port=controller.port, **options))
        return made[-1]

    yield build
    for channel in made:
        channel.close()


def parsed(envelope):
    return email.message_from_bytes(envelope.content, policy=policy.default)


def booking_email(**fields):
    fields.setdefault("to", ("jane@example.com",))
    fields.setdefault("subject", "Your haircut on Friday")
    fields.setdefault("text", "See you at 10:00.")
    return Email(**fields)


def test_every_recipient_is_in_the_envelope_and_bcc_is_in_no_header(smtp_server, channel_for):
    controller, recorder = smtp_server()
    channel = channel_for(controller)
    channel.send(booking_email(
        to=("Jane Doe <jane@example.com>",), cc=("staff@example.com",), bcc=("audit@example.com",),
    ))
    (envelope,) = recorder.envelopes
    assert envelope.mail_from == "bookings@example.com"
    assert envelope.rcpt_tos == ("jane@example.com", "staff@example.com", "audit@example.com")
    sent = parsed(envelope)
    assert sent["To"] == "Jane Doe <jane@example.com>"
    assert sent["Cc"] == "staff@example.com"
    assert sent["Bcc"] is None and b"audit@example.com" not in envelope.content
    assert sent["From"] == SENDER


def test_subject_text_and_html_arrive_as_alternatives(smtp_server, channel_for):
    controller, recorder = smtp_server()
    channel_for(controller).send(
        booking_email(subject="Rendez-vous confirmé", text="À vendredi", html="<p>À vendredi</p>")
    )
    sent = parsed(recorder.envelopes[0])
    assert sent["Subject"] == "Rendez-vous confirmé"
    assert sent.get_content_type() == "multipart/alternative"
    assert sent.get_body(("plain",)).get_content().strip() == "À vendredi"
    assert sent.get_body(("html",)).get_content().strip() == "<p>À vendredi</p>"


def test_the_message_id_is_the_given_one_and_the_receipt(smtp_server, channel_for):
    controller, recorder = smtp_server()
    receipt = channel_for(controller).send(booking_email(message_id="delivery-42@apptflow.example"))
    assert receipt.provider_id == "<delivery-42@apptflow.example>"
    assert parsed(recorder.envelopes[0])["Message-ID"] == "<delivery-42@apptflow.example>"


def test_without_a_given_message_id_one_is_made_and_returned(smtp_server, channel_for):
    controller, recorder = smtp_server()
    receipt = channel_for(controller).send(booking_email())
    assert receipt.provider_id == parsed(recorder.envelopes[0])["Message-ID"]
    assert receipt.provider_id.endswith("@example.com>")


def test_attachments_come_from_a_url_and_from_the_attachment_directory(
    smtp_server, channel_for, http_server, tmp_path
):
    pdf = Reply(body=b"%PDF-1.4 invoice", headers={"Content-Type": "application/pdf"})
    server = http_server(lambda request: pdf)
    (tmp_path / "terms.txt").write_bytes(b"Cancel 24 hours ahead.")
    controller, recorder = smtp_server()
    channel = channel_for(controller, attachment_dir=str(tmp_path), allow_private_addresses=True)
    channel.send(booking_email(html="<p>hi</p>", attachments=(f"{server.url}/invoice.pdf", "terms.txt")))
    sent = parsed(recorder.envelopes[0])
    found = {part.get_filename(): (part.get_content_type(), part.get_payload(decode=True))
             for part in sent.iter_attachments()}
    assert found == {
        "invoice.pdf": ("application/pdf", b"%PDF-1.4 invoice"),
        "terms.txt": ("text/plain", b"Cancel 24 hours ahead."),
    }
    assert sent.get_body(("html",)).get_content().strip() == "<p>hi</p>"


def test_an_attachment_that_cannot_load_sends_nothing(smtp_server, channel_for, tmp_path):
    controller, recorder = smtp_server()
    channel = channel_for(controller, attachment_dir=str(tmp_path))
    with pytest.raises(PermanentSendError, match="outside"):
        channel.send(booking_email(attachments=("../../etc/passwd",)))
    assert recorder.envelopes == []


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://localhost:{port}/export.csv"])
def test_an_attachment_url_to_a_private_address_sends_nothing_and_fetches_nothing(
    smtp_server, channel_for, http_server, url
):
    internal = http_server(lambda request: Reply(body=b"internal secrets"))
    controller, recorder = smtp_server()
    with pytest.raises(PermanentSendError, match="not a public address"):
        channel_for(controller).send(booking_email(attachments=(url.format(port=internal.port),)))
    assert internal.requests == []
    assert recorder.envelopes == []


def test_login_with_username_and_password(smtp_server, channel_for):
    controller, recorder = smtp_server(
        authenticator=password_authenticator({"mailer": "s3cret"}), auth_require_tls=False,
    )
    channel_for(controller, username="mailer", password="s3cret").send(booking_email())
    assert recorder.envelopes[0].login == "mailer"


def test_a_refused_login_is_permanent(smtp_server, channel_for):
    controller, recorder = smtp_server(
        authenticator=password_authenticator({"mailer": "s3cret"}), auth_require_tls=False,
    )
    with pytest.raises(PermanentSendError, match="535"):
        channel_for(controller, username="mailer", password="wrong").send(booking_email())
    assert recorder.envelopes == []


def test_a_recipient_refused_with_5xx_is_permanent(smtp_server, channel_for):
    controller, recorder = smtp_server()
    recorder.refuse["jane@example.com"] = "550 5.1.1 no such mailbox"
    with pytest.raises(PermanentSendError, match="550"):
        channel_for(controller).send(booking_email())


def test_a_recipient_refused_with_4xx_is_transient(smtp_server, channel_for):
    controller, recorder = smtp_server()
    recorder.refuse["jane@example.com"] = "451 4.7.1 greylisted, try again later"
    with pytest.raises(TransientSendError, match="451"):
        channel_for(controller).send(booking_email())


def test_one_refused_recipient_among_several_is_reported_not_retried(smtp_server, channel_for):
    controller, recorder = smtp_server()
    recorder.refuse["gone@example.com"] = "550 5.1.1 no such mailbox"
    receipt = channel_for(controller).send(booking_email(to=("jane@example.com", "gone@example.com")))
    assert recorder.envelopes[0].rcpt_tos == ("jane@example.com",)
    assert "gone@example.com: 550" in receipt.detail


@pytest.mark.parametrize("reply, error", [("451 4.3.0 queue full", TransientSendError),
                                          ("554 5.7.1 rejected as spam", PermanentSendError)])
def test_a_refused_message_body_follows_the_reply_code(smtp_server, channel_for, reply, error):
    controller, recorder = smtp_server()
    recorder.data_reply = reply
    with pytest.raises(error, match=reply[:3]):
        channel_for(controller).send(booking_email())


def test_a_server_that_is_not_listening_is_transient():
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    with SmtpChannel(host="127.0.0.1", port=port, sender=SENDER, timeout=0.3) as channel:
        with pytest.raises(TransientSendError, match="ConnectionRefused"):
            channel.send(booking_email())


@pytest.mark.parametrize("address", [
    "not-an-address", "jane@", "@example.com", "jane@@example.com", "jane@example.com, eve@example.com",
    "jane doe@example.com", "",
])
def test_an_invalid_address_is_permanent_and_nothing_is_sent(smtp_server, channel_for, address):
    controller, recorder = smtp_server()
    channel = channel_for(controller)
    for message in (booking_email(to=(address,)), booking_email(cc=(address,)), booking_email(bcc=(address,))):
        with pytest.raises(PermanentSendError, match="not an email address"):
            channel.send(message)
    assert recorder.envelopes == []


def test_a_line_break_in_the_subject_cannot_inject_headers(smtp_server, channel_for):
    controller, recorder = smtp_server()
    with pytest.raises(PermanentSendError, match="cannot build"):
        channel_for(controller).send(booking_email(subject="Hello\r\nBcc: eve@example.com"))
    assert recorder.envelopes == []


def test_an_invalid_sender_or_security_is_a_configuration_error():
    with pytest.raises(ValueError, match="sender"):
        SmtpChannel(sender="bookings")
    with pytest.raises(ValueError, match="security"):
        SmtpChannel(sender=SENDER, security="tls")


def test_starttls_with_login(smtp_server, channel_for, tls_files):
    controller, recorder = smtp_server(
        tls_context=server_tls_context(tls_files), require_starttls=True,
        authenticator=password_authenticator({"mailer": "s3cret"}),
    )
    channel = channel_for(controller, security="starttls", username="mailer", password="s3cret",
                          ca_file=str(tls_files.ca))
    channel.send(booking_email())
    assert recorder.envelopes[0].login == "mailer"
    assert channel.describe() == f"smtp://mailer@127.0.0.1:{controller.port} (starttls)"


def test_implicit_tls(smtp_server, channel_for, tls_files):
    controller, recorder = smtp_server(ssl_context=server_tls_context(tls_files))
    channel_for(controller, security="ssl", ca_file=str(tls_files.ca)).send(booking_email())
    assert len(recorder.envelopes) == 1


def test_an_untrusted_certificate_is_permanent(smtp_server, channel_for, tls_files):
    controller, recorder = smtp_server(tls_context=server_tls_context(tls_files))
    with pytest.raises(PermanentSendError, match="certificate"):
        channel_for(controller, security="starttls").send(booking_email())
    assert recorder.envelopes == []


def test_describe_names_the_server_not_the_password():
    channel = SmtpChannel(host="mail.example.com", port=465, security="ssl", username="mailer",
                          password="hunter2", sender=SENDER)
    with channel:
        assert channel.describe() == "smtp://mailer@mail.example.com:465 (ssl)"

