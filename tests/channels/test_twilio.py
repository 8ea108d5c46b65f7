"""SMS and WhatsApp go through the twilio library to a stand-in of Twilio's Messages API on loopback."""

from __future__ import annotations

import json

import pytest

from channels.base import ChannelUnavailable, PermanentSendError, TransientSendError
from channels.messages import Sms, WhatsApp
from channels.twilio_sms import TwilioSmsChannel, TwilioWhatsAppChannel
from tests.channels.servers import (
    ACCOUNT_SID, AUTH_TOKEN, MESSAGES_PATH, SMS_FROM, WHATSAPP_FROM, twilio_api, twilio_error,
)



@pytest.fixture
def api(http_server):
    return http_server(twilio_api)


@pytest.fixture
def sms(api):
    with TwilioSmsChannel(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SMS_FROM,
                          api_base_url=api.url, timeout=2.0) as channel:
        yield channel


@pytest.fixture
def whatsapp(api):
    with TwilioWhatsAppChannel(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, whatsapp_from=WHATSAPP_FROM,
                               api_base_url=api.url, timeout=2.0) as channel:
        yield channel


def test_an_sms_is_created_on_the_account_messages_resource(api, sms):
    receipt = sms.send(Sms(to="+14155550100", body="Your appointment is at 10:00"))
    (request,) = api.requests
    assert request.path == MESSAGES_PATH
    assert request.form == {"To": ["+14155550100"], "From": [SMS_FROM], "Body": ["Your appointment is at 10:00"]}
    assert receipt.provider_id.startswith("SM") and receipt.detail == "queued"


def test_an_edge_and_region_from_the_environment_still_reach_the_configured_api(api, monkeypatch):
    # The library then builds https://api.sydney.au1.twilio.com/...: that host is rebased too.
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")
    with TwilioSmsChannel(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SMS_FROM,
                          api_base_url=api.url + "/") as channel:
        channel.send(Sms(to="+14155550100", body="hi"))
    assert api.requests[0].path == MESSAGES_PATH


def test_a_messaging_service_sender_is_sent_as_such(api):
    with TwilioSmsChannel(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number="MG" + "1" * 32,
                          api_base_url=api.url) as channel:
        channel.send(Sms(to="+14155550100", body="hi"))
    assert api.requests[0].form["MessagingServiceSid"] == ["MG" + "1" * 32]
    assert "From" not in api.requests[0].form


def test_whatsapp_prefixes_both_numbers_and_sends_every_media_url(api, whatsapp):
    receipt = whatsapp.send(WhatsApp(to="+33612345678", body="Bonjour",
                                     media=("https://example.com/a.png", "https://example.com/b.pdf")))
    form = api.requests[0].form
    assert form["To"] == ["whatsapp:+33612345678"] and form["From"] == [f"whatsapp:{WHATSAPP_FROM}"]
    assert form["MediaUrl"] == ["https://example.com/a.png", "https://example.com/b.pdf"]
    assert receipt.provider_id.startswith("SM")


def test_a_whatsapp_recipient_may_already_carry_the_prefix(api, whatsapp):
    whatsapp.send(WhatsApp(to="whatsapp:+33612345678", body="Bonjour"))
    assert api.requests[0].form["To"] == ["whatsapp:+33612345678"]
    assert "MediaUrl" not in api.requests[0].form


def test_an_invalid_number_reported_by_twilio_is_permanent(api, sms):
    api.script.append(twilio_error(400, 21211, "The 'To' number +15005550001 is not a valid phone number."))
    with pytest.raises(PermanentSendError, match="21211"):
        sms.send(Sms(to="+15005550001", body="hi"))


@pytest.mark.parametrize("status, code", [(429, 20429), (503, 20500), (500, 20500)])
def test_rate_limits_and_server_errors_are_transient(api, sms, status, code):
    api.script.append(twilio_error(status, code, "Too many requests / service unavailable"))
    with pytest.raises(TransientSendError, match=f"HTTP {status}"):
        sms.send(Sms(to="+14155550100", body="hi"))


def test_wrong_credentials_are_permanent(api):
    with TwilioSmsChannel(account_sid=ACCOUNT_SID, auth_token="not-the-token", from_number=SMS_FROM,
                          api_base_url=api.url) as channel:
        with pytest.raises(PermanentSendError, match="HTTP 401"):
            channel.send(Sms(to="+14155550100", body="hi"))


@pytest.mark.parametrize("number", [
    "14155550100", "+0123456789", "+1 415 555 0100", "+12345", "+1234567890123456", "tel:+14155550100", "",
    "+1415555010a",
])
def test_an_invalid_number_is_refused_before_any_request(api, sms, whatsapp, number):
    with pytest.raises(PermanentSendError, match="E.164"):
        sms.send(Sms(to=number, body="hi"))
    with pytest.raises(PermanentSendError, match="E.164"):
        whatsapp.send(WhatsApp(to=number, body="hi"))
    assert api.requests == []


def test_a_body_over_1600_characters_is_refused_before_any_request(api, sms, whatsapp):
    sms.send(Sms(to="+14155550100", body="x" * 1600))
    with pytest.raises(PermanentSendError, match="limit is 1600"):
        sms.send(Sms(to="+14155550100", body="x" * 1601))
    with pytest.raises(PermanentSendError, match="limit is 1600"):
        whatsapp.send(WhatsApp(to="+14155550100", body="x" * 1601))
    assert len(api.requests) == 1


def test_whatsapp_media_must_be_http_urls(api, whatsapp):
    with pytest.raises(PermanentSendError, match="http"):
        whatsapp.send(WhatsApp(to="+14155550100", body="hi", media=("/srv/files/a.png",)))
    assert api.requests == []


def test_an_api_nobody_listens_on_is_transient(http_server):
    server = http_server()
    url = server.url
    server.stop()
    with TwilioSmsChannel(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SMS_FROM,
                          api_base_url=url) as channel:
        with pytest.raises(TransientSendError, match="ConnectionError"):
            channel.send(Sms(to="+14155550100", body="hi"))


@pytest.mark.parametrize("missing", ["account_sid", "auth_token", "from_number"])
def test_an_unconfigured_channel_is_unavailable_when_it_sends(missing):
    settings = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "from_number": SMS_FROM, missing: ""}
    with TwilioSmsChannel(**settings) as channel:
        assert "not configured" in channel.unavailable_reason
        with pytest.raises(ChannelUnavailable, match="not configured"):
            channel.send(Sms(to="+14155550100", body="hi"))


def test_describe_names_the_account_not_the_token(sms):
    assert ACCOUNT_SID in sms.describe() and AUTH_TOKEN not in sms.describe()


def test_a_whatsapp_template_is_sent_as_its_content_sid_and_json_variables(api, whatsapp):
    whatsapp.send(WhatsApp(to="+33612345678", content_sid="HX" + "b" * 32,
                           content_variables={"1": "Zoé", "2": "11:00"}))
    form = api.requests[0].form
    assert form["ContentSid"] == ["HX" + "b" * 32]
    assert json.loads(form["ContentVariables"][0]) == {"1": "Zoé", "2": "11:00"}
    assert "Body" not in form and form["From"] == [f"whatsapp:{WHATSAPP_FROM}"]


def test_a_content_sid_that_is_no_template_id_is_refused_before_sending(api, whatsapp):
    with pytest.raises(PermanentSendError, match="not a Twilio content template id"):
        whatsapp.send(WhatsApp(to="+33612345678", content_sid="HX12"))
    assert api.requests == []


def test_whatsapps_24_hour_window_error_is_permanent_and_explained(api, whatsapp):
    api.script.append(twilio_error(400, 63016, "Failed to send freeform message because you are outside the "
                                               "allowed window."))
    with pytest.raises(PermanentSendError) as refused:
        whatsapp.send(WhatsApp(to="+33612345678", body="Reminder"))
    assert "error 63016: WhatsApp refused free text outside the 24-hour window" in str(refused.value)
    assert "send an approved template (content_sid with content_variables) instead" in str(refused.value)


def test_receipts_are_asked_for_when_a_status_callback_is_configured(api):
    callback = "https://apptflow.example.test/hooks/twilio/status"
    with TwilioSmsChannel(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=SMS_FROM,
                          api_base_url=api.url, status_callback=callback) as channel:
        channel.send(Sms(to="+14155550100", body="hi"))
    assert api.requests[0].form["StatusCallback"] == [callback]


def test_an_unsubscribed_recipient_is_said_so_with_twilios_code(api, sms):
    from channels.base import RecipientOptedOut

    api.script.append(twilio_error(400, 21610, "Attempt to send to unsubscribed recipient"))
    with pytest.raises(RecipientOptedOut, match="unsubscribed") as raised:
        sms.send(Sms(to="+14155550100", body="hi"))
    assert raised.value.code == "21610"
    assert "StatusCallback" not in api.requests[0].form  # none configured: none asked for
