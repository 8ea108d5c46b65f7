"""Attachments load from an http(s) URL or from a file that stays inside the attachment directory."""

from __future__ import annotations

import os

import pytest

from channels import attachments, netguard
from channels.base import PermanentSendError, TransientSendError
from channels.httputil import new_session
from channels.netguard import BlockedAddress
from tests.channels.servers import Reply

PDF = b"%PDF-1.4 a small invoice"


@pytest.fixture
def attachment_dir(tmp_path):
    directory = tmp_path / "attachments"
    (directory / "invoices").mkdir(parents=True)
    (directory / "invoices" / "invoice.pdf").write_bytes(PDF)
    (tmp_path / "secret.txt").write_text("outside the attachment directory")
    return directory


def load(source, directory=None, **options):
    """Load as a channel would; the test servers live on loopback, so private addresses are allowed."""
    options.setdefault("timeout", 0.3)
    options.setdefault("allow_private_addresses", True)
    return attachments.load(source, directory=directory, **options)


def test_a_url_attachment_has_its_name_type_and_bytes(http_server):
    server = http_server(lambda request: Reply(body=PDF, headers={"Content-Type": "application/pdf; x=y"}))
    filename, content_type, data = load(f"{server.url}/files/invoice%20May.pdf?sig=abc")
    assert (filename, content_type, data) == ("invoice May.pdf", "application/pdf", PDF)


def test_a_url_without_a_content_type_is_typed_by_its_name(http_server):
    server = http_server(lambda request: Reply(body=b"a,b\n"))
    assert load(f"{server.url}/report.csv").content_type == "text/csv"


def test_a_url_that_does_not_answer_in_time_is_transient(http_server):
    server = http_server(lambda request: Reply(body=PDF, hang=5))
    with pytest.raises(TransientSendError, match="timed out"):
        load(f"{server.url}/slow.pdf", timeout=0.3)


def test_a_url_declaring_too_many_bytes_is_permanent(http_server):
    server = http_server(lambda request: Reply(body=b"x" * 5000))
    with pytest.raises(PermanentSendError, match="too large"):
        load(f"{server.url}/big.bin", max_bytes=1000)


def test_a_url_streaming_too_many_bytes_without_saying_so_is_permanent(http_server):
    server = http_server(lambda request: Reply(body=b"x" * 300_000, declare_length=False))
    with pytest.raises(PermanentSendError, match="too large"):
        load(f"{server.url}/big.bin", max_bytes=100_000)


@pytest.mark.parametrize("status, error", [(404, PermanentSendError), (403, PermanentSendError),
                                           (503, TransientSendError), (429, TransientSendError)])
def test_an_error_status_is_permanent_or_transient(http_server, status, error):
    server = http_server(lambda request: Reply(status=status))
    with pytest.raises(error, match=f"HTTP {status}"):
        load(f"{server.url}/invoice.pdf")


def test_a_url_nobody_listens_on_is_transient(http_server):
    server = http_server()
    url = f"{server.url}/invoice.pdf"
    server.stop()
    with pytest.raises(TransientSendError):
        load(url)


def test_a_file_inside_the_directory_is_read(attachment_dir):
    assert tuple(load("invoices/invoice.pdf", attachment_dir)) == ("invoice.pdf", "application/pdf", PDF)


def test_an_absolute_path_inside_the_directory_is_read(attachment_dir):
    assert load(str(attachment_dir / "invoices" / "invoice.pdf"), attachment_dir).data == PDF


def test_a_relative_path_climbing_out_of_the_directory_is_refused(attachment_dir):
    with pytest.raises(PermanentSendError, match="outside"):
        load("../secret.txt", attachment_dir)
    with pytest.raises(PermanentSendError, match="outside"):
        load("invoices/../../../../../../etc/passwd", attachment_dir)


def test_an_absolute_path_outside_the_directory_is_refused(attachment_dir):
    with pytest.raises(PermanentSendError, match="outside"):
        load("/etc/passwd", attachment_dir)


def test_a_symlink_escaping_the_directory_is_refused(attachment_dir):
    os.symlink(attachment_dir.parent / "secret.txt", attachment_dir / "innocent.pdf")
    os.symlink(attachment_dir.parent, attachment_dir / "up")
    with pytest.raises(PermanentSendError, match="outside"):
        load("innocent.pdf", attachment_dir)
    with pytest.raises(PermanentSendError, match="outside"):
        load("up/secret.txt", attachment_dir)


def test_file_attachments_are_refused_when_no_directory_is_configured():
    with pytest.raises(PermanentSendError, match="no attachment directory"):
        load("invoice.pdf", None)


def test_a_missing_file_is_permanent(attachment_dir):
    with pytest.raises(PermanentSendError, match="does not exist"):
        load("invoices/missing.pdf", attachment_dir)


def test_a_file_larger_than_the_limit_is_permanent(attachment_dir):
    with pytest.raises(PermanentSendError, match="too large"):
        load("invoices/invoice.pdf", attachment_dir, max_bytes=5)


@pytest.mark.parametrize("source", ["file:///etc/passwd", "ftp://example.com/x.pdf"])
def test_other_url_schemes_are_refused(attachment_dir, source):
    with pytest.raises(PermanentSendError, match="unsupported URL scheme"):
        load(source, attachment_dir)


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://10.0.0.8/invoice.pdf", "http://[::1]:9/invoice.pdf", "http://[::ffff:127.0.0.1]:9/x.pdf",
])
def test_a_url_to_a_private_address_is_refused_by_default(url):
    with pytest.raises(BlockedAddress, match="not a public address"):
        attachments.load(url, directory=None, timeout=0.3)


def test_a_loopback_server_is_not_even_contacted_by_default(http_server):
    server = http_server(lambda request: Reply(body=b"internal secrets"))
    for url in (f"http://localhost:{server.port}/admin/export.csv", f"{server.url}/admin/export.csv"):
        with pytest.raises(PermanentSendError, match="attachment from .*not a public address"):
            attachments.load(url, directory=None, timeout=0.3)
    assert server.requests == []


def test_a_redirect_to_a_private_address_is_refused(http_server, monkeypatch):
    # A world where 127.0.0.1 is the public internet and 127.0.0.2 the intranet.
    monkeypatch.setattr(netguard, "is_public", lambda address: address == "127.0.0.1")
    server = http_server(lambda request: Reply(status=302, headers={"Location": "http://127.0.0.2:9/secret.pdf"}))
    with pytest.raises(BlockedAddress, match="127.0.0.2"):
        attachments.load(f"{server.url}/invoice.pdf", directory=None, timeout=0.3)
    assert [r.path for r in server.requests] == ["/invoice.pdf"]


def test_a_session_without_the_guard_is_refused(http_server):
    server = http_server(lambda request: Reply(body=PDF))
    with new_session() as unguarded, pytest.raises(ValueError, match="guarded_session"):
        attachments.load(f"{server.url}/invoice.pdf", directory=None, session=unguarded)
    with attachments.guarded_session(allow_private_addresses=True) as lenient, \
            pytest.raises(ValueError, match="guarded_session"):
        attachments.load(f"{server.url}/invoice.pdf", directory=None, session=lenient)
    assert server.requests == []
