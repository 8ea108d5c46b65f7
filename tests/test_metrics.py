"""The Prometheus endpoint of a running daemon: every documented metric, moving as bookings are delivered."""

from __future__ import annotations

import datetime as dt
import socket

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from scheduler.daemon import Daemon
from scheduler.metrics import Metrics, MetricsError
from tests.booking import book, seed
from tests.conftest import sql, wait_until
from tests.pipeline import add_workflow, make_config

FAMILIES = {  # name as parsed (counters without _total) → type
    "apptflow_change_events_consumed": "counter", "apptflow_firings": "counter",
    "apptflow_firing_lateness_seconds": "histogram", "apptflow_deliveries": "counter",
    "apptflow_send_duration_seconds": "histogram", "apptflow_leader": "gauge",
    "apptflow_leadership_changes": "counter", "apptflow_reconcile_duration_seconds": "histogram",
    "apptflow_change_events_waiting": "gauge", "apptflow_change_event_backlog_age_seconds": "gauge",
    "apptflow_deliveries_due": "gauge",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int) -> dict[str, dict[tuple, float]]:
    """name (sample) → {labels as a sorted tuple: value}"""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples: dict[str, dict[tuple, float]] = {}
    families = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    samples["__types__"] = families
    return samples


def value(samples, name: str, **labels) -> float:
    return sum(v for key, v in samples.get(name, {}).items() if set(labels.items()) <= set(key))


def test_the_metrics_endpoint_serves_every_metric_and_they_move_when_bookings_are_delivered(engine, db_url):
    port = free_port()
    daemon = Daemon(make_config(db_url, APPTFLOW_METRICS_LISTEN=f"127.0.0.1:{port}",
                                APPTFLOW_DAEMON_POLL_INTERVAL="100ms", APPTFLOW_DAEMON_HEARTBEAT="200ms"),
                    engine=engine)
    add_workflow(engine, {"name": "confirm", "trigger": {"type": "appointment_created"},
                          "actions": [{"type": "email", "to": ["customer"], "subject": "s", "body": "b"}]})
    add_workflow(engine, {"name": "remind", "trigger": {"type": "appointment_starts", "offset": "-1m"},
                          "actions": [{"type": "sms", "to": ["customer"], "body": "soon"}]})
    ids = seed(engine)
    daemon.start()
    try:
        before = scrape(port)
        assert {name: before["__types__"].get(name) for name in FAMILIES} == FAMILIES  # each, of its type
        instance = daemon.metrics.instance
        wait_until(lambda: value(scrape(port), "apptflow_leader", instance=instance) == 1)
        starts = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(minutes=1, seconds=2)
        book(engine, ids, starts_at=starts.isoformat(), ends_at=(starts + dt.timedelta(hours=1)).isoformat())
        wait_until(lambda: sql(engine, "SELECT count(*) FROM deliveries WHERE status = 'sent'") == [(2,)])
        after = scrape(port)
    finally:
        daemon.stop()
    assert value(after, "apptflow_change_events_consumed_total", instance=instance) > \
        value(before, "apptflow_change_events_consumed_total", instance=instance)
    assert value(after, "apptflow_deliveries_total", instance=instance, channel="email", outcome="sent") == 1
    assert value(after, "apptflow_deliveries_total", instance=instance, channel="sms", outcome="sent") == 1
    assert value(after, "apptflow_send_duration_seconds_count", instance=instance) == 2
    assert value(after, "apptflow_firings_total", instance=instance, outcome="planned") >= 1
    assert value(after, "apptflow_firings_total", instance=instance, outcome="fired") == 1
    assert value(after, "apptflow_firing_lateness_seconds_count", instance=instance) == 1
    assert value(after, "apptflow_reconcile_duration_seconds_count", instance=instance) >= 1
    assert value(after, "apptflow_leadership_changes_total", instance=instance) >= 1
    assert value(after, "apptflow_change_events_waiting", instance=instance) == 0
    assert value(after, "apptflow_change_event_backlog_age_seconds", instance=instance) == 0


def test_the_backlog_and_its_age_are_read_at_each_scrape(engine, db_url):
    port = free_port()
    metrics = Metrics("test:1")
    metrics.serve(f"127.0.0.1:{port}", engine)
    try:
        book(engine, seed(engine), starts_at="2026-12-01T10:00:00+00:00", ends_at="2026-12-01T10:45:00+00:00")
        sql(engine, "UPDATE change_events SET created_at = :t", t=dt.datetime.now(dt.timezone.utc)
            - dt.timedelta(minutes=5))
        samples = scrape(port)
        assert value(samples, "apptflow_change_events_waiting", instance="test:1") >= 1
        assert 290 < value(samples, "apptflow_change_event_backlog_age_seconds", instance="test:1") < 3600
    finally:
        metrics.close()


def test_a_scrape_while_the_database_is_away_still_answers(tmp_path):
    from db.connect import connect

    port = free_port()
    metrics = Metrics("test:2")
    missing = connect(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}")  # cannot be opened
    metrics.serve(f"127.0.0.1:{port}", missing)
    try:
        samples = scrape(port)
        assert "apptflow_leadership_changes_total" in samples and "apptflow_change_events_waiting" not in samples
    finally:
        metrics.close()
        missing.dispose()


def test_a_port_in_use_is_a_clear_error(engine):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsError, match=f"cannot listen on 127.0.0.1:{port}"):
            Metrics("test:3").serve(f"127.0.0.1:{port}", engine)
