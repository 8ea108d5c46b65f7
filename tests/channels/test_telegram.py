"""Telegram messages go through requests to a stand-in of the Bot API on loopback."""

from __future__ import annotations

import pytest

from channels.base import ChannelUnavailable, PermanentSendError, TransientSendError
from channels.messages import Telegram
from channels.telegram import TelegramChannel
from tests.channels.servers import BOT_TOKEN as TOKEN, Reply, bot_api, bot_error



@pytest.fixture
def api(http_server):
    return http_server(bot_api)


@pytest.fixture
def telegram(api, tmp_path):
    with TelegramChannel(bot_token=TOKEN, api_url=api.url, timeout=2.0, attachment_dir=str(tmp_path)) as channel:
        yield channel


def test_a_message_is_sent_to_the_chat(api, telegram):
    receipt = telegram.send(Telegram(chat_id="-100200300", text="Your appointment is at 10:00"))
    (request,) = api.requests
    assert request.path == f"/bot{TOKEN}/sendMessage"
    assert request.json() == {"chat_id": "-100200300", "text": "Your appointment is at 10:00"}
    assert receipt.provider_id.isdigit()


def test_attachments_follow_the_text_as_documents(api, http_server, tmp_path):
    files = http_server(lambda request: Reply(body=b"%PDF invoice", headers={"Content-Type": "application/pdf"}))
    (tmp_path / "map.png").write_bytes(b"\x89PNG map")
    with TelegramChannel(bot_token=TOKEN, api_url=api.url, timeout=2.0, attachment_dir=str(tmp_path),
                         allow_private_addresses=True) as telegram:
        receipt = telegram.send(Telegram(chat_id="@salon", text="Documents for Friday",
                                         attachments=(f"{files.url}/invoice.pdf", "map.png")))
    text, *documents = api.requests
    assert text.path.endswith("/sendMessage")
    assert [d.path for d in documents] == [f"/bot{TOKEN}/sendDocument"] * 2
    assert [d.multipart()["document"] for d in documents] == [
        ("invoice.pdf", b"%PDF invoice"), ("map.png", b"\x89PNG map"),
    ]
    assert {d.multipart()["chat_id"][1] for d in documents} == {b"@salon"}
    assert len(receipt.detail.split()) == 2


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://localhost:{port}/export.csv"])
def test_an_attachment_url_to_a_private_address_sends_nothing_and_fetches_nothing(api, telegram, http_server, url):
    # The Bot API stand-in is on loopback too: the guard is for attachments, not for the operator's API server.
    internal = http_server(lambda request: Reply(body=b"internal secrets"))
    with pytest.raises(PermanentSendError, match="not a public address"):
        telegram.send(Telegram(chat_id="42", text="hi", attachments=(url.format(port=internal.port),)))
    assert internal.requests == []
    assert api.requests == []


def test_documents_alone_need_no_text(api, telegram, tmp_path):
    (tmp_path / "map.png").write_bytes(b"\x89PNG map")
    telegram.send(Telegram(chat_id="42", text="", attachments=("map.png",)))
    assert [r.path.rsplit("/", 1)[1] for r in api.requests] == ["sendDocument"]


def test_an_attachment_that_cannot_load_sends_nothing(api, telegram):
    with pytest.raises(PermanentSendError, match="outside"):
        telegram.send(Telegram(chat_id="42", text="hi", attachments=("../secrets.txt",)))
    assert api.requests == []


def test_a_refusal_from_the_bot_api_is_permanent(api, telegram):
    api.script.append(bot_error(400, "Bad Request: chat not found"))
    with pytest.raises(PermanentSendError, match="chat not found"):
        telegram.send(Telegram(chat_id="999", text="hi"))


def test_a_blocked_bot_is_permanent(api, telegram):
    api.script.append(bot_error(403, "Forbidden: bot was blocked by the user"))
    with pytest.raises(PermanentSendError, match="blocked"):
        telegram.send(Telegram(chat_id="999", text="hi"))


def test_flood_control_is_transient_and_says_when(api, telegram):
    api.script.append(bot_error(429, "Too Many Requests: retry after 7", retry_after=7))
    with pytest.raises(TransientSendError, match="retry after 7 s"):
        telegram.send(Telegram(chat_id="42", text="hi"))


@pytest.mark.parametrize("reply", [Reply(status=502, body="<html>Bad Gateway</html>"),
                                   bot_error(500, "Internal Server Error")])
def test_server_errors_are_transient(api, telegram, reply):
    api.script.append(reply)
    with pytest.raises(TransientSendError, match=f"HTTP {reply.status}"):
        telegram.send(Telegram(chat_id="42", text="hi"))


def test_an_api_that_does_not_answer_in_time_is_transient(api, tmp_path):
    api.script.append(Reply(hang=5, body={"ok": True, "result": {"message_id": 1}}))
    with TelegramChannel(bot_token=TOKEN, api_url=api.url, timeout=0.3) as channel:
        with pytest.raises(TransientSendError, match="Timeout"):
            channel.send(Telegram(chat_id="42", text="hi"))


def test_a_text_over_4096_characters_is_refused_before_any_request(api, telegram):
    telegram.send(Telegram(chat_id="42", text="x" * 4096))
    with pytest.raises(PermanentSendError, match="limit is 4096"):
        telegram.send(Telegram(chat_id="42", text="x" * 4097))
    assert len(api.requests) == 1


def test_an_empty_message_is_refused(api, telegram):
    with pytest.raises(PermanentSendError, match="neither text nor attachments"):
        telegram.send(Telegram(chat_id="42", text=""))


def test_without_a_token_the_channel_is_unavailable(api):
    with TelegramChannel(api_url=api.url) as channel, pytest.raises(ChannelUnavailable, match="no bot token"):
        channel.send(Telegram(chat_id="42", text="hi"))
    assert api.requests == []


def test_describe_hides_the_token(telegram, api):
    assert telegram.describe() == f"telegram (bot ***) via {api.url}"
    with TelegramChannel(bot_token=TOKEN) as default_api:
        assert default_api.describe() == "telegram (bot ***)"
