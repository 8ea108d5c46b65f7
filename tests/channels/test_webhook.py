"""Webhooks go through requests to a receiver on loopback that checks the Standard Webhooks signature itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket

import pytest

from channels import netguard
from channels.base import PermanentSendError, TransientSendError
from channels.messages import Webhook
from channels.netguard import BlockedAddress, literal_refusal
from channels.webhook import WebhookChannel
from tests.channels.servers import TLS_NAME, Reply

KEY = b"the receiver and apptflow share these bytes"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
NOW = 1_700_000_000


def expected_signature(key: bytes, request) -> str:
    """The receiver's side of Standard Webhooks: HMAC-SHA256 of "id.timestamp.body", base64, "v1," first."""
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode() + request.body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@pytest.fixture
def receiver(http_server):
    return http_server(lambda request: Reply(status=204))


@pytest.fixture
def webhook():
    """A factory for channels allowed to reach loopback (the receiver lives there), closed after the test."""
    made = []

    def build(**options):
        options.setdefault("allow_private_addresses", True)
        options.setdefault("timeout", 2.0)
        options.setdefault("clock", lambda: NOW + 0.75)
        made.append(WebhookChannel(**options))
        return made[-1]

    yield build
    for channel in made:
        channel.close()


class FakeDns(dict):
    """Chosen names → chosen addresses; ``asked`` lists every lookup of those names."""

    def __init__(self):
        super().__init__()
        self.asked: list[str] = []


@pytest.fixture
def fake_dns(monkeypatch):
    """Answer chosen names with chosen addresses, every other name with the real resolver."""
    fake, real = FakeDns(), socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in fake:
            return real(host, port, *args, **kwargs)
        fake.asked.append(host)
        if fake[host] is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (fake[host], port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return fake


def hook(url, **fields):
    fields.setdefault("body", '{"appointment_id": 42, "status": "approved"}')
    fields.setdefault("delivery_id", "dlv_0001")
    return Webhook(url=url, **fields)


def test_a_signed_request_verifies_with_the_shared_secret(receiver, webhook):
    receipt = webhook(secret=SECRET).send(hook(f"{receiver.url}/apptflow", headers={"X-Salon": "Main street"}))
    (request,) = receiver.requests
    assert request.method == "POST" and request.path == "/apptflow"
    assert request.headers["webhook-id"] == "dlv_0001"
    assert request.headers["webhook-timestamp"] == str(NOW)
    assert request.headers["webhook-signature"] == expected_signature(KEY, request)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-salon"] == "Main street"
    assert request.body == b'{"appointment_id": 42, "status": "approved"}'
    assert (receipt.provider_id, receipt.detail) == ("dlv_0001", "204")


def test_a_secret_without_the_whsec_prefix_is_used_as_utf8_bytes(receiver, webhook):
    webhook(secret="plain secret é").send(hook(receiver.url))
    request = receiver.requests[0]
    assert request.headers["webhook-signature"] == expected_signature("plain secret é".encode(), request)


def test_a_retry_carries_the_same_webhook_id(receiver, webhook):
    channel = webhook(secret=SECRET)
    channel.send(hook(receiver.url))
    channel.send(hook(receiver.url))
    assert {r.headers["webhook-id"] for r in receiver.requests} == {"dlv_0001"}


def test_without_a_secret_the_request_is_unsigned_but_identified(receiver, webhook):
    webhook().send(hook(receiver.url, method="put", body="plain text", content_type="text/plain"))
    request = receiver.requests[0]
    assert request.method == "PUT" and request.headers["content-type"] == "text/plain"
    assert "webhook-signature" not in request.headers and request.headers["webhook-id"] == "dlv_0001"


def test_a_whsec_secret_that_is_not_base64_is_a_configuration_error():
    with pytest.raises(ValueError, match="base64"):
        WebhookChannel(secret="whsec_not base64!")


def test_the_receivers_id_header_becomes_the_provider_id(http_server, webhook):
    server = http_server(lambda request: Reply(status=201, headers={"X-Request-Id": "req-77"}))
    assert webhook().send(hook(server.url)).provider_id == "req-77"


def test_a_redirect_is_not_followed(http_server, webhook):
    server = http_server(lambda request: Reply(status=302, headers={"Location": "/moved"}))
    redirect = r"HTTP 302, a redirect to http://127\.0\.0\.1:\d+ \(not followed\)"
    with pytest.raises(PermanentSendError, match=redirect):
        webhook().send(hook(f"{server.url}/hook"))
    assert [r.path for r in server.requests] == ["/hook"]


def test_redirects_are_followed_when_allowed(http_server, webhook):
    server = http_server(lambda request: Reply(status=307, headers={"Location": "/moved"})
                         if request.path == "/hook" else Reply(status=200))
    assert webhook(follow_redirects=True).send(hook(f"{server.url}/hook")).detail == "200"
    assert [r.path for r in server.requests] == ["/hook", "/moved"]


@pytest.mark.parametrize("status, error", [(500, TransientSendError), (503, TransientSendError),
                                           (429, TransientSendError), (404, PermanentSendError),
                                           (400, PermanentSendError), (401, PermanentSendError)])
def test_an_error_status_is_transient_or_permanent(http_server, webhook, status, error):
    server = http_server(lambda request: Reply(status=status, body="receiver says no"))
    with pytest.raises(error, match=f"HTTP {status}: receiver says no"):
        webhook().send(hook(server.url))


def test_a_receiver_that_does_not_answer_in_time_is_transient(http_server, webhook):
    server = http_server(lambda request: Reply(hang=5))
    with pytest.raises(TransientSendError, match="ReadTimeout"):
        webhook().send(hook(server.url, timeout=0.3))


def test_a_receiver_nobody_listens_on_is_transient(http_server, webhook):
    server = http_server()
    url = server.url
    server.stop()
    with pytest.raises(TransientSendError, match="ConnectionError"):
        webhook().send(hook(url))


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://[::1]:9/",
                                 "http://10.0.0.8/hook", "http://0.0.0.0:9/", "http://[::ffff:127.0.0.1]:9/"])
def test_private_addresses_are_refused(webhook, url):
    with pytest.raises(BlockedAddress, match="not a public address"):
        webhook(allow_private_addresses=False).send(hook(url))


def test_a_name_resolving_to_loopback_is_refused_without_connecting(receiver, webhook):
    channel = webhook(allow_private_addresses=False)
    for url in (f"http://localhost:{receiver.port}/hook", f"{receiver.url}/hook"):
        with pytest.raises(PermanentSendError, match="not a public address"):
            channel.send(hook(url))
    assert receiver.requests == []


def test_every_redirect_hop_is_checked(http_server, webhook, fake_dns, monkeypatch):
    # A world where 127.0.0.1 is public and 127.0.0.2 is the intranet.
    monkeypatch.setattr(netguard, "is_public", lambda address: address == "127.0.0.1")
    fake_dns.update({"hooks.apptflow.test": "127.0.0.1", "intranet.apptflow.test": "127.0.0.2"})
    server = http_server(lambda request: Reply(
        status=307, headers={"Location": f"http://intranet.apptflow.test:{server.port}/admin"}))
    with pytest.raises(BlockedAddress, match="intranet.apptflow.test"):
        webhook(allow_private_addresses=False, follow_redirects=True).send(
            hook(f"http://hooks.apptflow.test:{server.port}/hook"))
    assert [r.path for r in server.requests] == ["/hook"]


def test_the_connection_goes_to_the_address_that_was_checked(receiver, webhook, fake_dns):
    # No real resolver knows this name: reaching the receiver proves the
    # connection used the one answer the guard checked, not a second lookup.
    fake_dns["hooks.apptflow.test"] = "127.0.0.1"
    webhook().send(hook(f"http://hooks.apptflow.test:{receiver.port}/hook"))
    assert receiver.requests[0].headers["host"] == f"hooks.apptflow.test:{receiver.port}"
    assert fake_dns.asked == ["hooks.apptflow.test"]


def test_a_name_that_does_not_resolve_is_transient(webhook, fake_dns):
    fake_dns["gone.apptflow.test"] = None
    with pytest.raises(TransientSendError, match="cannot resolve 'gone.apptflow.test'"):
        webhook(allow_private_addresses=False).send(hook("https://gone.apptflow.test/hook"))


def test_tls_is_verified_for_the_name_while_connecting_to_the_pinned_address(
    http_server, webhook, fake_dns, tls_files
):
    server = http_server(lambda request: Reply(status=200), tls=tls_files)
    fake_dns.update({TLS_NAME: "127.0.0.1", "wrong-name.apptflow.test": "127.0.0.1"})
    channel = webhook(ca_file=str(tls_files.ca))
    assert channel.send(hook(f"https://{TLS_NAME}:{server.port}/hook")).detail == "200"
    assert server.requests[0].headers["host"] == f"{TLS_NAME}:{server.port}"
    with pytest.raises(TransientSendError, match="certificate|hostname"):
        channel.send(hook(f"https://wrong-name.apptflow.test:{server.port}/hook"))
    assert len(server.requests) == 1


@pytest.mark.parametrize("url", [
    "ftp://example.com/hook", "file:///etc/passwd", "example.com/hook", "http:///hook",
])
def test_a_url_that_is_not_http_is_permanent(webhook, url):
    with pytest.raises(PermanentSendError, match="not an http"):
        webhook().send(hook(url))


def test_an_unknown_method_is_permanent(receiver, webhook):
    with pytest.raises(PermanentSendError, match="method"):
        webhook().send(hook(receiver.url, method="TRACE"))
    assert receiver.requests == []


def test_a_line_break_in_a_header_value_is_permanent(receiver, webhook):
    with pytest.raises(PermanentSendError, match="InvalidHeader"):
        webhook().send(hook(receiver.url, headers={"X-Note": "a\r\nX-Injected: yes"}))
    assert receiver.requests == []


def test_describe_says_whether_requests_are_signed_never_the_secret(webhook):
    assert webhook(secret=SECRET).describe() == "webhook (signed, private addresses allowed)"
    assert webhook(allow_private_addresses=False).describe() == "webhook (unsigned)"


@pytest.mark.parametrize("url, kind", [
    ("http://169.254.169.254/latest/meta-data", "link-local"), ("http://10.0.0.5/x", "private"),
    ("http://127.0.0.1:8080/", "loopback"), ("http://[::1]/", "loopback"), ("http://[fe80::1]/", "link-local"),
    ("http://[::ffff:169.254.169.254]/", "link-local"), ("http://0.0.0.0/", "unspecified"),
])
def test_a_literal_address_the_guard_refuses_is_known_before_sending(url, kind):
    assert literal_refusal(url).endswith(f"is a {kind} address, not a public one")


@pytest.mark.parametrize("url", ["https://93.184.216.34/x", "http://hooks.example.com/x",
                                 "http://{{ appointment.custom.host }}/x", "not a url", ""])
def test_names_templates_and_public_literals_are_left_to_send_time(url):
    assert literal_refusal(url) is None
