"""Scale-out: 1, 2 and 4 daemon processes on one PostgreSQL database, sharing 8 partitions.

For each instance count, on a fresh database: N bookings in one transaction
(webhooks per second at the receiver, against bare ``requests`` with the
daemon's concurrency), N reminders due in the same second (lateness at the
receiver, against bare ``requests`` sending the same N at that second), the
share of the events each instance consumed and of the firings each fired (from
their metrics), and with two instances or more the time the others take to
lead a SIGKILLed instance's partitions (heartbeat 1 s). The instances run on
the same machine as PostgreSQL and the receiver: what bounds each figure is
said in docs/benchmarks.md.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.delivery import BEFORE
from bench.harness import (
    UTC,
    DaemonProcess,
    Figure,
    bare_requests,
    insert_appointments,
    percentile,
    seed_services,
    webhook_workflow,
)
from bench.receiver import Receiver
from db import instances
from db.connect import connect

PARTITIONS = 8
HEARTBEAT = 1.0  # seconds: the takeover is reported in heartbeats too


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    instances: tuple[int, ...]
    burst: int  # bookings in one transaction
    due: int  # reminders due in the same second


FULL = Sizes(instances=(1, 2, 4), burst=10_000, due=10_000)
QUICK = Sizes(instances=(1, 2), burst=300, due=300)


def run(fresh, backend: str, sizes: Sizes) -> list[Figure]:
    """*fresh*: a new database's URL for each instance count."""
    figures, rates = [], {}
    receiver = Receiver()
    try:
        floors = _floors(receiver, sizes)
        for count in sizes.instances:
            found, rates[count] = _instances(fresh(), backend, receiver, count, sizes, floors)
            figures += found
    finally:
        receiver.stop()
    one = rates.get(1)
    for count, rate in rates.items():
        if count > 1 and one:
            figures.append(Figure(scenario="scale-out", database=backend,
                                  figure=f"{count} instances: burst throughput over {count} × one instance's",
                                  value=rate / (count * one), unit="×", aim="≥ 0.8"))
    return figures


def _floors(receiver: Receiver, sizes: Sizes) -> dict[str, object]:
    receiver.reset()
    elapsed = bare_requests(f"{receiver.url}/floor", [json.dumps({"id": str(n)}) for n in range(sizes.burst)])
    burst = sizes.burst / elapsed
    receiver.reset()
    start = time.time() + 1.0
    bare_requests(f"{receiver.url}/floor", [json.dumps({"id": str(n)}) for n in range(sizes.due)], start_at=start)
    due = [t - start for t, _, _ in receiver.arrivals("/floor")]
    receiver.reset()
    return {"burst": burst, "due": due}


def _instances(url: str, backend: str, receiver: Receiver, count: int, sizes: Sizes,
               floors: dict) -> tuple[list[Figure], float]:
    engine = connect(url)
    ids = seed_services(engine, 2)
    webhook_workflow(engine, receiver.url, "/burst", {"type": "appointment_created"}, ids["service"])
    webhook_workflow(engine, receiver.url, "/timer", {"type": "appointment_starts", "offset": "-1m"},
                     ids["service2"])
    ports = [_free_port() for _ in range(count)]
    daemons = [DaemonProcess(url, APPTFLOW_DAEMON_PARTITIONS=str(PARTITIONS), APPTFLOW_DAEMON_HEARTBEAT=f"{HEARTBEAT:g}s",
                             APPTFLOW_METRICS_LISTEN=f"127.0.0.1:{port}") for port in ports]
    label = f"{count} instance{'s' if count > 1 else ''}"
    figures: list[Figure] = []
    try:
        for daemon in daemons:
            daemon.wait_ready()
        _wait(lambda: _led(engine, set()) == set(range(PARTITIONS)) and len(_leads(engine, set())) == count)
        # N bookings in one transaction
        receiver.reset()
        start = dt.datetime.now(UTC) + dt.timedelta(days=1)
        before = _machine_busy()
        _, committed = insert_appointments(engine, ids, ids["service"], [start] * sizes.burst)
        arrivals = receiver.wait_for("/burst", sizes.burst, timeout=60 + sizes.burst / 20)
        busy = _machine_busy(since=before)
        rate = len(arrivals) / (max(t for t, _, _ in arrivals) - committed) if arrivals else 0.0
        figures.append(Figure(scenario="scale-out", database=backend,
                              figure=f"{label}: {sizes.burst} bookings in one transaction → webhooks/s",
                              value=rate, unit="/s", floor=floors["burst"]))
        figures.append(Figure(scenario="scale-out", database=backend,
                              figure=f"{label}: the machine's cores busy during that burst (all processes)",
                              value=100 * busy, unit="%"))
        consumed = [_metric(port, "apptflow_change_events_consumed_total") for port in ports]
        figures.append(_shares(backend, f"{label}: share of the change events each consumed", consumed))
        # N reminders due in the same second
        receiver.reset()
        lead = 5.0 + sizes.due / 400 / count
        first = dt.datetime.fromtimestamp(round(time.time() + lead), UTC)
        booked, _ = insert_appointments(engine, ids, ids["service2"], [first + BEFORE] * sizes.due)
        arrivals = receiver.wait_for("/timer", sizes.due, timeout=lead + 60 + sizes.due / 20)
        late = [t - first.timestamp() for t, _, _ in arrivals]
        for what, q in (("p50", 0.5), ("p99", 0.99)):
            figures.append(Figure(scenario="scale-out", database=backend,
                                  figure=f"{label}: {sizes.due} reminders due in the same second, lateness {what}",
                                  value=percentile(late, q) * 1000, unit="ms",
                                  floor=percentile(floors["due"], q) * 1000,
                                  aim="≤ 1.3 × floor" if count == 1 and what == "p99" else "—"))
        figures.append(Figure(scenario="scale-out", database=backend,
                              figure=f"{label}: reminders delivered / early", value=len(late),
                              unit=f"of {sizes.due}, {sum(1 for x in late if x < 0)} early", aim="all, 0 early"))
        fired = [_metric(port, "apptflow_firings_total", outcome="fired") for port in ports]
        figures.append(_shares(backend, f"{label}: share of the firings each fired", fired))
        if count > 1:
            figures.append(_takeover(engine, backend, label, daemons[0]))
    finally:
        for daemon in daemons:
            if daemon.process.poll() is None:
                daemon.stop()
        engine.dispose()
    return figures, rate


def _takeover(engine, backend: str, label: str, victim: DaemonProcess) -> Figure:
    """SIGKILL one instance; how long until the others lead every partition."""
    victim.process.kill()
    killed = time.monotonic()
    victim.process.wait()
    _wait(lambda: _led(engine, {victim.pid}) == set(range(PARTITIONS)), interval=0.01)
    took = time.monotonic() - killed
    return Figure(scenario="scale-out", database=backend,
                  figure=f"{label}: a SIGKILLed instance's partitions led again after (heartbeat {HEARTBEAT:g} s)",
                  value=took / HEARTBEAT, unit=f"heartbeats ({took:.2f} s)", aim="≤ 2")


def _shares(backend: str, figure: str, counts: list[float]) -> Figure:
    total = sum(counts) or 1.0
    shares = ", ".join(f"{100 * c / total:.0f} %" for c in counts)
    return Figure(scenario="scale-out", database=backend, figure=f"{figure}: {shares}",
                  value=100 * max(counts) / total, unit="% the largest", aim=f"≈ {100 / len(counts):.0f} %")


def _leads(engine, dead: set[int]) -> dict[int, list[int]]:
    with engine.connect() as conn:
        alive = instances.running(conn, dt.datetime(2000, 1, 1, tzinfo=UTC))
    return {i.pid: instances.led(i) for i in alive if i.pid not in dead and instances.led(i)}


def _led(engine, dead: set[int]) -> set[int]:
    return {p for led in _leads(engine, dead).values() for p in led}


def _metric(port: int, name: str, **labels: str) -> float:
    """The sum of a counter's samples with these labels, scraped from one instance."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


def _wait(predicate, timeout: float = 120, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("the instances did not settle")
        time.sleep(interval)


def _machine_busy(since: tuple[int, int] | None = None):
    """The machine's (busy, total) CPU ticks so far, from /proc/stat; with *since*, the busy fraction since."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, total = fields[3] + fields[4], sum(fields[:8])
    if since is None:
        return total - idle, total
    return ((total - idle) - since[0]) / max(1, total - since[1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
