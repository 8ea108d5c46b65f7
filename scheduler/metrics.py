"""Prometheus metrics of one daemon, served on ``[metrics] listen`` (docs/operations.md lists them).

Each daemon keeps its metrics in a registry of its own, every series labelled
with its ``instance`` (``host:pid``), so the leader and every other instance
can be scraped side by side (and two daemons in one process do not collide).
Counters and histograms are updated where things happen; the backlog is read
from the database when Prometheus scrapes.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from db import deliveries, events
from db.errors import describe

logger = logging.getLogger(__name__)

LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
RECONCILE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600)


class MetricsError(Exception):
    """The metrics cannot be served as configured."""


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Metrics:
    """The metrics of one daemon, and the few calls its parts make to move them."""

    def __init__(self, instance: str | None = None):
        self.instance = instance or instance_name()
        self.registry = CollectorRegistry()
        labels = ["instance"]
        options = {"registry": self.registry}
        self._events = Counter("apptflow_change_events_consumed", "Change events handled by the consumer, by "
                               "partition", labels + ["partition"], **options)
        self._firings = Counter("apptflow_firings", "Time-offset and recurring firings by what became of them: planned (a job "
                                "written or moved), fired, skipped (planned too late), missed (beyond grace); by partition",
                                labels + ["outcome", "partition"], **options)
        self._lateness = Histogram("apptflow_firing_lateness_seconds", "How long after its planned time a firing "
                                   "was written as deliveries", labels, buckets=LATENESS_BUCKETS, **options)
        self._deliveries = Counter("apptflow_deliveries", "Delivery attempts by channel and outcome: sent, retry "
                                   "(a transient failure), dead, skipped, lost (lease ended unrecorded)",
                                   labels + ["channel", "outcome"], **options)
        self._send = Histogram("apptflow_send_duration_seconds", "Time a channel took to send one delivery",
                               labels + ["channel"], buckets=SEND_BUCKETS, **options)
        self._leader = Gauge("apptflow_leader", "1 while this instance leads the partition (consumes its events, "
                             "runs its jobs)", labels + ["partition"], **options)
        self._changes = Counter("apptflow_leadership_changes", "Times this instance started or stopped leading "
                                "a partition", labels, **options)
        self._reconcile = Histogram("apptflow_reconcile_duration_seconds", "Time a reconciliation of the "
                                    "time-offset jobs took", labels, buckets=RECONCILE_BUCKETS, **options)
        self._receipts = Counter("apptflow_receipts", "Delivery receipts (status callbacks) by channel and the "
                                 "status they report", labels + ["channel", "status"], **options)
        self._replies = Counter("apptflow_messages_received", "Messages received from customers by channel and "
                                "what they were taken as: reply, unmatched, opt_out, opt_in",
                                labels + ["channel", "outcome"], **options)
        self._optouts = Counter("apptflow_optout_changes", "Numbers put on (out) or taken off (in) an opt-out list",
                                labels + ["channel", "change"], **options)
        self._leading: set[int] = set()
        self._changes.labels(self.instance)
        self._lateness.labels(self.instance)
        self._reconcile.labels(self.instance)
        self._server = None

    # --- what the daemon's parts call ---------------------------------------------------------

    def consumed(self, count: int, partition: int = 0) -> None:
        self._events.labels(self.instance, str(partition)).inc(count)

    def firings(self, outcome: str, count: int = 1, partition: int = 0) -> None:
        if count:
            self._firings.labels(self.instance, outcome, str(partition)).inc(count)

    def late(self, seconds: float) -> None:
        self._lateness.labels(self.instance).observe(max(0.0, seconds))

    def delivered(self, channel: str, outcome: str) -> None:
        self._deliveries.labels(self.instance, channel, outcome).inc()

    def sent_in(self, channel: str, seconds: float) -> None:
        self._send.labels(self.instance, channel).observe(seconds)

    def leading(self, partition: int, now_leading: bool) -> None:
        if now_leading != (partition in self._leading):
            (self._leading.add if now_leading else self._leading.discard)(partition)
            self._leader.labels(self.instance, str(partition)).set(1 if now_leading else 0)
            self._changes.labels(self.instance).inc()

    def reconciled(self, seconds: float) -> None:
        self._reconcile.labels(self.instance).observe(seconds)

    def receipt(self, channel: str, status: str) -> None:
        self._receipts.labels(self.instance, channel, status).inc()

    def replied(self, channel: str, outcome: str) -> None:
        self._replies.labels(self.instance, channel, outcome).inc()

    def opted(self, channel: str, change: str) -> None:
        self._optouts.labels(self.instance, channel, change).inc()

    # --- serving --------------------------------------------------------------------------------

    def serve(self, listen: str, engine: Engine) -> None:
        """Serve the metrics on *listen* (``host:port``), the backlog read from *engine* at each scrape."""
        host, _, port = listen.rpartition(":")
        try:
            self._server = start_http_server(int(port), addr=host.strip("[]"), registry=self.registry)
        except OSError as error:
            raise MetricsError(f"[metrics] listen: cannot listen on {listen}: {error.strerror or error}") from None
        self.registry.register(_Backlog(engine, self.instance))
        logger.info("serving Prometheus metrics on http://%s/metrics", listen)

    def close(self) -> None:
        if self._server is not None:
            server, thread = self._server
            server.shutdown()
            server.server_close()
            thread.join()
            self._server = None


class _Backlog(Collector):
    """What waits, read when Prometheus scrapes: change events and their age, deliveries due."""

    def __init__(self, engine: Engine, instance: str):
        self.engine, self.instance = engine, instance
        self._lock = threading.Lock()  # one query at a time, however many scrapers

    def describe(self):
        return []  # collected only when scraped: never at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            try:
                now = dt.datetime.now(dt.timezone.utc)
                with self.engine.connect() as conn:
                    waiting, oldest = events.count_waiting(conn), events.oldest_waiting(conn)
                    due = deliveries.count_due(conn, now)
            except Exception as error:  # noqa: BLE001 - a scrape must answer while the database is away
                logger.debug("metrics: cannot read the backlog: %s", describe(error))
                return
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        for name, text, value in (
            ("apptflow_change_events_waiting", "Change events not handled yet", waiting),
            ("apptflow_change_event_backlog_age_seconds", "Age of the oldest change event not handled yet "
                                                          "(0 when none waits)", max(0.0, age)),
            ("apptflow_deliveries_due", "Deliveries due and waiting for a worker", due),
        ):
            family = GaugeMetricFamily(name, text, labels=["instance"])
            family.add_metric([self.instance], value)
            yield family
