"""No credential shows in a log line (at DEBUG, libraries' included), an error, a traceback or describe()."""

from __future__ import annotations

import base64
import json
import socket
import traceback

from channels.base import ChannelError
from channels.messages import Email, Sms, Telegram, WhatsApp, Webhook
from channels.smtp import SmtpChannel
from channels.sns import SnsSmsChannel
from channels.telegram import TelegramChannel
from channels.twilio_sms import TwilioSmsChannel, TwilioWhatsAppChannel
from channels.webhook import WebhookChannel
from scheduler.logs import JsonFormatter, TextFormatter
from tests.channels.servers import (
    ACCOUNT_SID, AUTH_TOKEN, BOT_TOKEN, Reply, bot_api, bot_error, password_authenticator, sns_error,
    twilio_api, twilio_error,
)

SMTP_PASSWORD = "smtp-Pa55word-never-logged"
WEBHOOK_KEY = b"webhook-signing-key-never-logged"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(WEBHOOK_KEY).decode()
AWS_SECRET_KEY = "aws/secret+key/never-logged/0123456789ab"


def outcomes(channel, *messages) -> str:
    """Send each message; return every error as its message, repr and full traceback, plus describe()."""
    texts = [channel.describe()]
    for message in messages:
        try:
            channel.send(message)
        except ChannelError as error:
            texts += [str(error), repr(error), "".join(traceback.format_exception(error))]
    return "\n".join(texts)


def assert_secret_free(secrets, log, errors: str) -> None:
    """No secret in what was logged, as the test runner shows it and as the daemon writes it in
    either of its formats (text, or JSON lines with tracebacks inside)."""
    formatted = [formatter.format(record) for record in log.records
                 for formatter in (TextFormatter(), JsonFormatter())]
    logged = "\n".join([log.text] + [record.getMessage() for record in log.records] + formatted)
    assert log.records, "the test captured no log at all"
    assert all(json.loads(line) for line in formatted[1::2]), "a JSON log line does not parse"
    for secret in secrets:
        assert secret not in logged
        assert secret not in errors


def closed_port() -> int:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        return placeholder.getsockname()[1]


def test_smtp_never_shows_its_password(smtp_server, debug_log):
    controller, recorder = smtp_server(
        authenticator=password_authenticator({"mailer": SMTP_PASSWORD}), auth_require_tls=False,
    )
    mail = Email(to=("jane@example.com",), subject="hi", text="hi")
    with SmtpChannel(host="127.0.0.1", port=controller.port, username="mailer", password=SMTP_PASSWORD,
                     sender="b@example.com", timeout=2.0) as good, \
         SmtpChannel(host="127.0.0.1", port=controller.port, username="mailer", password=SMTP_PASSWORD + "x",
                     sender="b@example.com", timeout=2.0) as refused, \
         SmtpChannel(host="127.0.0.1", port=closed_port(), username="mailer", password=SMTP_PASSWORD,
                     sender="b@example.com", timeout=2.0) as unreachable:
        errors = outcomes(good, mail) + outcomes(refused, mail) + outcomes(unreachable, mail)
    assert len(recorder.envelopes) == 1 and "535" in errors
    assert_secret_free([SMTP_PASSWORD], debug_log, errors)


def test_twilio_never_shows_its_auth_token(http_server, debug_log):
    api = http_server(twilio_api)
    api.script.extend([Reply(status=201, body={"sid": "SM1", "status": "queued"}),
                       twilio_error(400, 21211, "invalid To"), twilio_error(503, 20500, "down")])
    settings = dict(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, timeout=2.0)
    sms = Sms(to="+14155550100", body="hi")
    with TwilioSmsChannel(from_number="+15005550006", api_base_url=api.url, **settings) as channel, \
         TwilioWhatsAppChannel(whatsapp_from="+15005550006", api_base_url=api.url, **settings) as whatsapp, \
         TwilioSmsChannel(from_number="+15005550006", api_base_url=f"http://127.0.0.1:{closed_port()}",
                          **settings) as unreachable:
        errors = outcomes(channel, sms, sms, sms) + outcomes(whatsapp, WhatsApp(to="+14155550100", body="hi"))
        errors += outcomes(unreachable, sms)
    assert "21211" in errors and "ConnectionError" in errors
    assert_secret_free([AUTH_TOKEN], debug_log, errors)


def test_telegram_never_shows_its_bot_token(http_server, debug_log):
    token = BOT_TOKEN
    api = http_server(bot_api)
    api.script.extend([bot_error(400, "Bad Request: chat not found"), Reply(status=502, body="bad gateway")])
    message = Telegram(chat_id="42", text="hi")
    with TelegramChannel(bot_token=token, api_url=api.url, timeout=2.0) as channel, \
         TelegramChannel(bot_token=token, api_url=f"http://127.0.0.1:{closed_port()}",
                         timeout=2.0) as unreachable:
        errors = outcomes(channel, message, message, message) + outcomes(unreachable, message)
    assert "chat not found" in errors and "ConnectionError" in errors
    assert "/bot***/sendMessage" in debug_log.text  # urllib3 logged the path, redacted
    assert_secret_free([token, token.split(":")[1]], debug_log, errors)


def test_the_webhook_secret_never_shows(http_server, debug_log):
    receiver = http_server(lambda request: Reply(status=204))
    receiver.script.extend([Reply(status=500, body="oops"), Reply(status=404)])
    message = Webhook(url=receiver.url, body="{}", delivery_id="dlv_1")
    with WebhookChannel(secret=WEBHOOK_SECRET, allow_private_addresses=True, timeout=2.0) as channel, \
         WebhookChannel(secret=WEBHOOK_SECRET, timeout=2.0) as guarded:
        errors = outcomes(channel, message, message, message) + outcomes(guarded, message)
    assert "HTTP 500" in errors and "not a public address" in errors
    assert_secret_free([WEBHOOK_SECRET, WEBHOOK_KEY.decode()], debug_log, errors)


def test_aws_keys_never_show(http_server, debug_log):
    aws = http_server(lambda request: sns_error(400, "Sender", "InvalidParameter", "bad number"))
    sms = Sms(to="+14155550100", body="hi")
    with SnsSmsChannel(region="eu-west-1", endpoint_url=aws.url, access_key_id="AKIAIOSFODNN7EXAMPLE",
                       secret_access_key=AWS_SECRET_KEY, timeout=2.0) as channel:
        errors = outcomes(channel, sms)
    assert "InvalidParameter" in errors
    assert_secret_free([AWS_SECRET_KEY], debug_log, errors)
