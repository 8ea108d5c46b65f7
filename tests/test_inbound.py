"""What comes back, through a real daemon: the real twilio library sends to a stand-in of Twilio's API on
loopback, and the tests post status callbacks and incoming messages signed as Twilio signs them
(``RequestValidator.compute_signature`` over the public URL); Telegram replies come from a stand-in Bot
API's getUpdates. Bookings are written with plain SQL, as the booking application writes them."""

from __future__ import annotations

import json
import socket

import pytest
import requests
from click.testing import CliRunner
from twilio.request_validator import RequestValidator

from scheduler.cli import main
from scheduler.daemon import Daemon
from tests.booking import book, seed
from tests.channels.servers import (
    ACCOUNT_SID, AUTH_TOKEN, BOT_TOKEN, SMS_FROM, WHATSAPP_FROM, HttpServer, Reply, bot_api, twilio_api,
    twilio_error,
)
from tests.conftest import sql, wait_until
from tests.pipeline import add_workflow, make_config

START, END = "2026-12-01T10:00:00+00:00", "2026-12-01T10:45:00+00:00"
PUBLIC_URL = "https://apptflow.example.test/hooks"
CUSTOMER = "+15550002222"
FAST = {"APPTFLOW_DAEMON_POLL_INTERVAL": "100ms", "APPTFLOW_DAEMON_HEARTBEAT": "200ms"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def twilio():
    server = HttpServer(twilio_api).start()
    yield server
    server.stop()


def settings(db_url: str, twilio: HttpServer, **more: str) -> dict[str, str]:
    return {"APPTFLOW_DAEMON_DRY_RUN": "false", **FAST,
            "APPTFLOW_TWILIO_ACCOUNT_SID": ACCOUNT_SID, "APPTFLOW_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "APPTFLOW_TWILIO_FROM_NUMBER": SMS_FROM, "APPTFLOW_TWILIO_WHATSAPP_FROM": WHATSAPP_FROM,
            "APPTFLOW_TWILIO_API_BASE_URL": twilio.url,
            "APPTFLOW_INBOUND_LISTEN": f"127.0.0.1:{free_port()}", "APPTFLOW_INBOUND_PUBLIC_URL": PUBLIC_URL, **more}


@pytest.fixture
def daemon(engine, db_url, twilio):
    running = Daemon(make_config(db_url, **settings(db_url, twilio)), engine=engine)
    running.start()
    yield running
    running.stop()


def post(daemon: Daemon, path: str, params: dict[str, str], *, signature: str | None = "valid",
         token: str = AUTH_TOKEN) -> requests.Response:
    """POST a form to the daemon's endpoint as Twilio does: signed over the public URL (or not, or wrongly)."""
    if signature == "valid":
        signature = RequestValidator(token).compute_signature(PUBLIC_URL + path, params)
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    return requests.post(f"http://127.0.0.1:{daemon.inbound.port}/hooks{path}", data=params, headers=headers,
                         timeout=10)


def receipt(daemon: Daemon, sid: str, status: str, error_code: str = "") -> None:
    params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": ACCOUNT_SID, "To": CUSTOMER,
              "From": SMS_FROM, "ApiVersion": "2010-04-01"}
    if error_code:
        params["ErrorCode"] = error_code
    answer = post(daemon, "/twilio/status", params)
    assert answer.status_code == 200 and answer.text.endswith("<Response/>")


def incoming(daemon: Daemon, sender: str, body: str, sid: str) -> requests.Response:
    return post(daemon, "/twilio/inbound", {"MessageSid": sid, "AccountSid": ACCOUNT_SID, "From": sender,
                                            "To": SMS_FROM, "Body": body, "NumMedia": "0"})


def sms(name: str, trigger: dict, body: str, **extra) -> dict:
    return {"name": name, "trigger": trigger, **extra, "actions": [{"type": "sms", "to": ["customer"], "body": body}]}


def sent(twilio: HttpServer) -> list[dict[str, str]]:
    return [{k: v[0] for k, v in r.form.items()} for r in twilio.requests]


def cli(db_url: str, *args: str):
    return CliRunner().invoke(main, list(args), env={"APPTFLOW_DATABASE_URL": db_url})


def delivery(engine, where: str):
    return sql(engine, f"SELECT id, status, provider_status, provider_error, provider_id, error FROM deliveries "
                       f"WHERE {where} ORDER BY id")


def test_receipts_out_of_order_and_repeated_end_right_and_an_undelivered_whatsapp_falls_back_to_sms(
        engine, db_url, daemon, twilio):
    add_workflow(engine, sms("text", {"type": "appointment_created"}, "See you {{ appointment_date }}"))
    reminder = {"name": "whatsapp reminder", "trigger": {"type": "appointment_created"},
                "actions": [{"type": "whatsapp", "to": ["customer"], "body": "See you soon"}]}
    add_workflow(engine, reminder)
    add_workflow(engine, sms("fallback", {"type": "message_undelivered", "channels": ["whatsapp"],
                                          "workflows": ["whatsapp reminder"]},
                             "{{ failed_channel }} {{ failure_code }} {{ failure_reason }}: see you soon"))
    book(engine, seed(engine), starts_at=START, ends_at=END)
    wait_until(lambda: len(twilio.requests) == 2)
    assert {m["StatusCallback"] for m in sent(twilio)} == {PUBLIC_URL + "/twilio/status"}
    wait_until(lambda: len(delivery(engine, "status = 'sent'")) == 2)
    [(text_id, _, _, _, text_sid, _)] = delivery(engine, "action_type = 'sms'")
    [(whatsapp_id, _, _, _, whatsapp_sid, _)] = delivery(engine, "action_type = 'whatsapp'")

    for sid, status, code in ((text_sid, "delivered", ""), (text_sid, "sent", ""), (text_sid, "queued", ""),
                              (text_sid, "delivered", ""), (whatsapp_sid, "undelivered", "30003"),
                              (whatsapp_sid, "sent", ""), (whatsapp_sid, "undelivered", "30003"),
                              (whatsapp_sid, "failed", "30008")):
        receipt(daemon, sid, status, code)
    assert delivery(engine, f"id = {text_id}")[0][1:4] == ("sent", "delivered", None)
    assert delivery(engine, f"id = {whatsapp_id}")[0][1:4] == ("sent", "undelivered", "30003: unreachable handset")

    wait_until(lambda: len(twilio.requests) == 3)  # the fallback, once
    fallback = sent(twilio)[2]
    assert fallback["To"] == CUSTOMER and fallback["Body"] == "whatsapp 30003 unreachable handset: see you soon"
    wait_until(lambda: len(delivery(engine, "status = 'sent'")) == 3)
    assert sql(engine, "SELECT count(*) FROM change_events WHERE table_name = 'deliveries'") == [(1,)]

    log = cli(db_url, "log").output
    assert "sent → delivered" in log and "sent → undelivered (30003: unreachable handset)" in log
    undelivered = cli(db_url, "log", "--undelivered").output
    assert "whatsapp" in undelivered and undelivered.count("\n") == 2  # the heading and the one failure
    scraped = daemon.metrics.registry.get_sample_value(
        "apptflow_receipts_total", {"instance": daemon.metrics.instance, "channel": "whatsapp", "status": "undelivered"})
    assert scraped == 2


def test_an_unsigned_or_wrongly_signed_request_is_refused_and_changes_nothing(engine, daemon, twilio):
    add_workflow(engine, sms("text", {"type": "appointment_created"}, "hi"))
    add_workflow(engine, sms("answer", {"type": "customer_replied"}, "thanks"))
    book(engine, seed(engine), starts_at=START, ends_at=END)
    wait_until(lambda: delivery(engine, "status = 'sent'"))
    [(_, _, _, _, sid, _)] = delivery(engine, "1 = 1")
    status = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    message = {"MessageSid": "SM" + "f" * 32, "From": CUSTOMER, "To": SMS_FROM, "Body": "STOP"}
    other = RequestValidator("another-token").compute_signature(PUBLIC_URL + "/twilio/status", status)
    elsewhere = RequestValidator(AUTH_TOKEN).compute_signature("https://elsewhere.test/twilio/status", status)
    for answer in (post(daemon, "/twilio/status", status, signature=None),
                   post(daemon, "/twilio/status", status, signature=other),
                   post(daemon, "/twilio/status", status, signature=elsewhere),
                   post(daemon, "/twilio/inbound", message, signature=None),
                   post(daemon, "/twilio/inbound", {**message, "Body": "C"},
                        signature=RequestValidator(AUTH_TOKEN).compute_signature(
                            PUBLIC_URL + "/twilio/inbound", message))):  # signed for another body
        assert answer.status_code == 403
    assert delivery(engine, "1 = 1")[0][2] is None
    for table in ("inbound_messages", "optouts"):
        assert sql(engine, f"SELECT count(*) FROM {table}") == [(0,)]
    assert sql(engine, "SELECT count(*) FROM change_events WHERE table_name IN ('deliveries', "
                       "'inbound_messages')") == [(0,)]
    # A body over the limit is refused before it is read; a GET is not a callback.
    with socket.create_connection(("127.0.0.1", daemon.inbound.port), timeout=5) as raw:
        raw.sendall(b"POST /hooks/twilio/inbound HTTP/1.1\r\nHost: x\r\nContent-Type: "
                    b"application/x-www-form-urlencoded\r\nContent-Length: 10000000\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.0 413")
    assert requests.get(f"http://127.0.0.1:{daemon.inbound.port}/hooks/twilio/inbound", timeout=5).status_code == 405


def test_c_from_the_customer_confirms_the_appointment_and_an_unknown_number_changes_nothing(
        engine, db_url, daemon, twilio):
    add_workflow(engine, sms("ask", {"type": "appointment_created"}, "Reply C to confirm"))
    add_workflow(engine, {"name": "confirm by reply", "trigger": {"type": "customer_replied", "replies": ["C", "Sì"]},
                          "actions": [{"type": "set_status", "status": "approved"},
                                      {"type": "sms", "to": ["customer"], "body": "Thanks, {{ reply_text|trim }}!"}]})
    appointment = book(engine, seed(engine), starts_at=START, ends_at=END, status="pending")
    wait_until(lambda: len(twilio.requests) == 1)
    wait_until(lambda: delivery(engine, "status = 'sent'"))

    assert incoming(daemon, "+15559990000", "C", "SM" + "1" * 32).status_code == 200
    assert incoming(daemon, CUSTOMER, "maybe", "SM" + "2" * 32).status_code == 200  # a reply, not an answer
    wait_until(lambda: sql(engine, "SELECT count(*) FROM change_events WHERE processed_at IS NULL") == [(0,)])
    assert sql(engine, "SELECT status FROM appointments WHERE id = :id", id=appointment) == [("pending",)]
    assert len(twilio.requests) == 1

    answer = incoming(daemon, CUSTOMER, "  c ", "SM" + "3" * 32)
    assert answer.status_code == 200 and answer.text.endswith("<Response/>")
    incoming(daemon, CUSTOMER, "  c ", "SM" + "3" * 32)  # Twilio asks again: recorded once
    wait_until(lambda: sql(engine, "SELECT status FROM appointments WHERE id = :id", id=appointment) == [("approved",)])
    wait_until(lambda: len(twilio.requests) == 2)
    assert sent(twilio)[1]["Body"] == "Thanks, c!"
    assert sql(engine, "SELECT sender, outcome, appointment_id FROM inbound_messages ORDER BY id") == [
        ("+15559990000", "unmatched", None), (CUSTOMER, "reply", appointment), (CUSTOMER, "reply", appointment)]
    log = cli(db_url, "log").output
    assert "unmatched  no appointment" in log and "'C'" in log


def test_stop_skips_every_later_text_before_twilio_and_start_lets_them_through(engine, db_url, daemon, twilio):
    add_workflow(engine, sms("approved", {"type": "appointment_status_changed", "to": ["approved"]}, "Approved"))
    appointment = book(engine, seed(engine), starts_at=START, ends_at=END, status="pending")
    assert incoming(daemon, CUSTOMER, "Stop ", "SM" + "4" * 32).status_code == 200
    assert [row[:2] for row in sql(engine, "SELECT channel, address FROM optouts")] == [("sms", CUSTOMER)]
    assert f"sms        {CUSTOMER}" in cli(db_url, "optouts", "list").output

    sql(engine, "UPDATE appointments SET status = 'approved' WHERE id = :id", id=appointment)
    wait_until(lambda: delivery(engine, "status = 'skipped'"))
    [(_, _, _, _, _, error)] = delivery(engine, "1 = 1")
    assert f"{CUSTOMER} is on the sms opt-out list since " in error and "replied 'Stop'" in error
    assert twilio.requests == []

    incoming(daemon, CUSTOMER, "START", "SM" + "5" * 32)
    assert sql(engine, "SELECT count(*) FROM optouts") == [(0,)]
    sql(engine, "UPDATE appointments SET status = 'pending' WHERE id = :id", id=appointment)
    sql(engine, "UPDATE appointments SET status = 'approved' WHERE id = :id", id=appointment)
    wait_until(lambda: len(twilio.requests) == 1)
    assert sent(twilio)[0]["Body"] == "Approved"


def test_twilio_refusing_an_unsubscribed_number_puts_it_on_the_list(engine, db_url, daemon, twilio):
    twilio.script.append(twilio_error(400, 21610, "Attempt to send to unsubscribed recipient"))
    add_workflow(engine, sms("text", {"type": "appointment_created"}, "hi"))
    book(engine, seed(engine), starts_at=START, ends_at=END)
    wait_until(lambda: delivery(engine, "status = 'dead'"))
    [(_, _, provider_status, provider_error, _, error)] = delivery(engine, "1 = 1")
    assert provider_status == "failed" and provider_error.startswith("21610: ") and "21610" in error
    [(channel, address, reason)] = sql(engine, "SELECT channel, address, reason FROM optouts")
    assert (channel, address) == ("sms", CUSTOMER) and "21610" in reason
    assert cli(db_url, "optouts", "remove", "sms", CUSTOMER).exit_code == 0
    assert sql(engine, "SELECT count(*) FROM optouts") == [(0,)]


class BotWithUpdates:
    """The Bot API's sendMessage, and getUpdates handing out what the test queued from an offset on."""

    def __init__(self):
        self.updates: list[dict] = []
        self.offsets: list[int] = []

    def __call__(self, request):
        if request.path.endswith("/getUpdates"):
            offset = request.json().get("offset", 0)
            self.offsets.append(offset)
            return Reply(body={"ok": True, "result": [u for u in self.updates if u["update_id"] >= offset]})
        return bot_api(request)


def test_a_telegram_reply_read_with_get_updates_sets_off_customer_replied(engine, db_url, twilio):
    bot = BotWithUpdates()
    api = HttpServer(bot).start()
    config = make_config(db_url, **settings(db_url, twilio, APPTFLOW_TELEGRAM_BOT_TOKEN=BOT_TOKEN,
                                            APPTFLOW_TELEGRAM_API_URL=api.url,
                                            APPTFLOW_TELEGRAM_RECEIVE_REPLIES="true"))
    add_workflow(engine, {"name": "ask", "trigger": {"type": "appointment_created"},
                          "actions": [{"type": "telegram", "chat_id": ["customer"], "text": "Oui ou non ?"}]})
    add_workflow(engine, {"name": "oui", "trigger": {"type": "customer_replied", "replies": ["OUI"]},
                          "actions": [{"type": "set_status", "status": "approved"}]})
    ids = seed(engine)
    sql(engine, "UPDATE customers SET telegram_chat_id = '5551' WHERE id = :id", id=ids["customer"])
    daemon = Daemon(config, engine=engine)
    daemon.start()
    try:
        appointment = book(engine, ids, starts_at=START, ends_at=END, status="pending")
        wait_until(lambda: delivery(engine, "status = 'sent'"))
        bot.updates.append({"update_id": 700, "message": {"message_id": 9, "chat": {"id": 5551}, "text": " Oui "}})
        wait_until(lambda: sql(engine, "SELECT status FROM appointments WHERE id = :id", id=appointment)
                   == [("approved",)])
        wait_until(lambda: bot.offsets[-1] == 701)  # confirmed: Telegram forgets it, apptflow reads on from there
    finally:
        daemon.stop()
        api.stop()
    assert sql(engine, "SELECT source, next_offset FROM inbound_offsets") == [("telegram", 701)]
    assert sql(engine, "SELECT channel, sender, outcome FROM inbound_messages") == [("telegram", "5551", "reply")]


def test_workflow_add_refuses_an_opt_out_word_as_an_answer(db_url, backend, tmp_path):
    if backend != "sqlite":
        pytest.skip("a rule of the workflow document: one database shows it")
    path = tmp_path / "cancel.yaml"
    path.write_text(json.dumps({"name": "cancel by reply",
                                "trigger": {"type": "customer_replied", "replies": ["N", "cancel"]},
                                "actions": [{"type": "set_status", "status": "canceled"}]}))
    result = cli(db_url, "workflow", "add", str(path))
    assert result.exit_code == 1
    assert "trigger.replies[1]: 'cancel' is an opt-out word: Twilio itself unsubscribes" in result.output
    assert "ANNULLA" in result.output
