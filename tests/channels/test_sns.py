"""SMS goes through real boto3 to moto's SNS server on loopback; AWS's error answers come from a stand-in."""

from __future__ import annotations

import pytest

from channels.base import PermanentSendError, TransientSendError
from channels.messages import Sms
from channels.sns import SnsSmsChannel
from tests.channels.servers import HttpServer, sns_error

REGION = "eu-west-1"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture(scope="module")
def moto_url():
    """moto's server (every AWS service) on 127.0.0.1 and a free port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    server._server.server_close()  # stop() leaves the listening socket open


@pytest.fixture(scope="module")
def sns(moto_url):
    """One channel for the module: a boto3 client is slow to build."""
    with channel(moto_url) as sns:
        yield sns


@pytest.fixture(scope="module")
def aws_stub():
    """A stand-in answering what the test queues in ``script``, and a channel pointed at it."""
    server = HttpServer().start()
    with channel(server.url) as sns:
        yield server, sns
    server.stop()


@pytest.fixture
def sent_sms():
    """What moto's SNS backend recorded: message id → (phone number, text)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    return sns_backends[DEFAULT_ACCOUNT_ID][REGION].sms_messages


def channel(endpoint_url, **options):
    return SnsSmsChannel(region=REGION, endpoint_url=endpoint_url, access_key_id=ACCESS_KEY,
                         secret_access_key=SECRET_KEY, timeout=2.0, **options)


def test_an_sms_is_published_to_the_phone_number(sns, sent_sms):
    receipt = sns.send(Sms(to="+14155550100", body="Your appointment is at 10:00"))
    assert sent_sms[receipt.provider_id] == ("+14155550100", "Your appointment is at 10:00")


@pytest.mark.parametrize("number", ["14155550100", "+0123456789", "+1 415 555 0100", ""])
def test_an_invalid_number_is_permanent_and_nothing_is_published(sns, sent_sms, number):
    before = dict(sent_sms)
    with pytest.raises(PermanentSendError, match="E.164"):
        sns.send(Sms(to=number, body="hi"))
    assert dict(sent_sms) == before


def test_a_body_over_1600_characters_is_permanent(sns, sent_sms):
    before = dict(sent_sms)
    with pytest.raises(PermanentSendError, match="limit is 1600"):
        sns.send(Sms(to="+14155550100", body="x" * 1601))
    assert dict(sent_sms) == before




@pytest.mark.parametrize("reply, error", [
    (sns_error(400, "Sender", "Throttling", "Rate exceeded"), TransientSendError),
    (sns_error(500, "Receiver", "InternalError", "Internal failure"), TransientSendError),
    (sns_error(503, "Receiver", "ServiceUnavailable", "Unavailable"), TransientSendError),
    (sns_error(400, "Sender", "InvalidParameter", "Invalid parameter: PhoneNumber"), PermanentSendError),
    (sns_error(403, "Sender", "AuthorizationError", "Not authorized"), PermanentSendError),
    (sns_error(400, "Sender", "OptedOut", "Phone number is opted out"), PermanentSendError),
])
def test_aws_error_codes_map_to_transient_or_permanent(aws_stub, reply, error):
    server, sns = aws_stub
    server.script.append(reply)
    asked = len(server.requests)
    with pytest.raises(error, match=reply.body.split("<Code>")[1].split("<")[0]):
        sns.send(Sms(to="+14155550100", body="hi"))
    assert len(server.requests) == asked + 1  # botocore's own retries are off: retrying is the engine's call


def test_an_endpoint_nobody_listens_on_is_transient(http_server):
    server = http_server()
    url = server.url
    server.stop()
    with channel(url) as sns, pytest.raises(TransientSendError, match="EndpointConnectionError"):
        sns.send(Sms(to="+14155550100", body="hi"))


def test_describe_names_the_region_not_the_keys(sns, moto_url):
    assert sns.describe() == f"sns-sms ({REGION}) via {moto_url}"
    assert SECRET_KEY not in sns.describe() and ACCESS_KEY not in sns.describe()
