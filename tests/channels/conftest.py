"""Fixtures for the channel tests: loopback servers started per test, and stopped completely."""

from __future__ import annotations

import logging

import pytest

from tests.channels.servers import HttpServer, SmtpRecorder, make_tls_files, smtp_controller


@pytest.fixture
def http_server():
    """A factory: ``http_server(route)`` starts an HTTP server on loopback, stopped after the test."""
    started = []

    def start(route=None, **options) -> HttpServer:
        server = HttpServer(route, **options) if route else HttpServer(**options)
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """A throwaway CA and a certificate for localhost / 127.0.0.1."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp_server():
    """A factory: ``smtp_server(**aiosmtpd_options)`` starts an SMTP server; returns (controller, recorder)."""
    started = []

    def start(**options):
        recorder = SmtpRecorder()
        controller = smtp_controller(recorder, **options)
        controller.start()
        started.append(controller)
        return controller, recorder

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def debug_log(caplog):
    """Every log record at DEBUG, the HTTP and SDK libraries' included."""
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "twilio", "botocore", "boto3", "requests", "channels"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog
