"""Scale-out: 1, 2 and 4 daemon processes on one PostgreSQL database, sharing 8 partitions.

For each instance count k, on a fresh database, once the instances lead their
fair shares (heartbeat 1 s): N bookings in one transaction (webhooks per
second at the receiver, against the burst's floor, and with k ≥ 2 against k
times one instance's), N reminders due in the same second (lateness at the
receiver, against the timer accuracy scenario's same-second floor), the
share of the burst's change events each instance consumed and of the
reminders each fired (from their metrics), and with k ≥ 2 the time until the
others' rows in ``instances`` lead every partition of an instance killed with
SIGKILL, in heartbeats. The floors are ``delivery``'s, run once before the
instances against the same receiver. The instances share the machine with
PostgreSQL and the receiver: what bounds each figure is said in
docs/benchmarks.md. Several instances need a shared database server, and
this is measured on PostgreSQL only (the production database).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.delivery import burst_floor, burst_rate, same_second_floor, timer_lateness
from bench.harness import UTC, DaemonProcess, Figure, percentile, report_errors, seed_services, webhook_workflow
from bench.receiver import Receiver, free_port
from db import instances
from db.connect import connect

PARTITIONS = 8
HEARTBEAT = 1.0  # seconds, instead of the default 5 s: the takeover is reported in heartbeats too
LEAD = 5.0  # seconds from the reminders' booking to their firing, at least (as the timer accuracy scenario's)
SCENARIO = "scale-out"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    instances: tuple[int, ...]  # instance counts, one first: the others' throughput is compared with its
    burst: int  # bookings in one transaction
    due: int  # reminders due in the same second


FULL = Sizes(instances=(1, 2, 4), burst=10_000, due=10_000)
QUICK = Sizes(instances=(1, 2), burst=300, due=300)


def unsupported(backend: str) -> str | None:
    """Why the scenario is not measured on *backend*, or None."""
    if backend == "postgresql":
        return None
    if backend == "sqlite":
        return "SQLite serves one instance, which leads the one partition"
    return "several instances are measured on PostgreSQL only"


def run(fresh, backend: str, sizes: Sizes) -> list[Figure]:
    """*fresh*: a new database's URL for each instance count."""
    figures, rates = [], {}
    receiver = Receiver()
    try:
        floors = {"burst": burst_floor(receiver, sizes.burst), "due": same_second_floor(receiver, sizes.due)}
        for count in sizes.instances:
            found, rates[count] = _instances(fresh(), backend, receiver, count, sizes, floors, one=rates.get(1))
            figures += found
    finally:
        receiver.stop()
    return figures


def _instances(url: str, backend: str, receiver: Receiver, count: int, sizes: Sizes, floors: dict,
               one: float | None) -> tuple[list[Figure], float]:
    """*count* instances on the database at *url*: their figures, and their burst's webhooks per second.
    *one*: one instance's webhooks per second, if measured."""
    engine = connect(url)
    ids = seed_services(engine, 2)
    webhook_workflow(engine, receiver.url, "/burst", {"type": "appointment_created"}, ids["service"])
    webhook_workflow(engine, receiver.url, "/timer", {"type": "appointment_starts", "offset": "-1m"},
                     ids["service2"])
    ports = [free_port() for _ in range(count)]
    daemons = [DaemonProcess(url, APPTFLOW_DAEMON_PARTITIONS=str(PARTITIONS),
                             APPTFLOW_DAEMON_HEARTBEAT=f"{HEARTBEAT:g}s", APPTFLOW_METRICS_LISTEN=f"127.0.0.1:{port}")
               for port in ports]
    label = f"{count} instance{'s' if count > 1 else ''}"
    try:
        for daemon in daemons:
            daemon.wait_ready()
        _wait(lambda: _balanced(engine, count))
        figures, rate = _burst(engine, backend, receiver, ids, label, ports, sizes.burst, floors["burst"], one)
        figures += _due(engine, backend, receiver, ids, label, ports, sizes.due, floors["due"])
        if count > 1:
            figures.append(_takeover(engine, backend, label, daemons[0]))
    finally:
        for daemon in daemons:
            report_errors(daemon.stop(), f"{backend}, {label}")
        engine.dispose()
    return figures, rate


def _burst(engine, backend: str, receiver: Receiver, ids: dict[str, int], label: str, ports: list[int],
           count: int, floor: float, one: float | None) -> tuple[list[Figure], float]:
    """*count* bookings in one transaction: webhooks/s, the machine's busy cores, each instance's events."""
    consumed, busy = _counters(ports, "apptflow_change_events_consumed_total"), _machine_busy()
    rate, received = burst_rate(engine, receiver, ids, ids["service"], count)
    busy = _machine_busy(since=busy)
    consumed = [after - before for after, before in
                zip(_counters(ports, "apptflow_change_events_consumed_total"), consumed, strict=True)]
    figures = [Figure(scenario=SCENARIO, database=backend,
                      figure=f"{label}: {count} bookings in one transaction → webhooks/s ({received} received)",
                      value=rate, unit="/s", floor=floor)]
    if len(ports) > 1 and one:
        figures.append(Figure(scenario=SCENARIO, database=backend,
                              figure=f"{label}: the same (floor: {len(ports)} × one instance's)",
                              value=rate, unit="/s", floor=len(ports) * one, aim="≥ 0.8 × floor"))
    figures.append(Figure(scenario=SCENARIO, database=backend,
                          figure=f"{label}: the machine's cores busy during that burst (all processes)",
                          value=100 * busy, unit="%"))
    figures.append(_shares(backend, f"{label}: share of the burst's change events each consumed", consumed))
    return figures, rate


def _due(engine, backend: str, receiver: Receiver, ids: dict[str, int], label: str, ports: list[int],
         count: int, floor: list[float]) -> list[Figure]:
    """*count* reminders due in the same second: lateness, planning, each instance's firings."""
    fired = _counters(ports, "apptflow_firings_total", outcome="fired")
    late, planning = timer_lateness(engine, receiver, ids, ids["service2"], count, isolated=False, lead=LEAD)
    fired = [after - before for after, before in
             zip(_counters(ports, "apptflow_firings_total", outcome="fired"), fired, strict=True)]
    what = f"{label}: {count} reminders due in the same second"
    figures = [Figure(scenario=SCENARIO, database=backend, figure=f"{what}: lateness {name}",
                      value=percentile(late, q) * 1000, unit="ms", floor=percentile(floor, q) * 1000,
                      aim="≤ 1.3 × floor" if len(ports) == 1 and name == "p99" else "—")
               for name, q in (("p50", 0.5), ("p99", 0.99))]
    return figures + [
        Figure(scenario=SCENARIO, database=backend, figure=f"{what}: delivered / early", value=len(late),
               unit=f"of {count}, {sum(1 for x in late if x < 0)} early", aim="all, 0 early"),
        Figure(scenario=SCENARIO, database=backend, figure=f"{what}: commit → all {count} jobs planned",
               value=planning, unit="s"),
        _shares(backend, f"{what}: share each fired", fired),
    ]


def _takeover(engine, backend: str, label: str, victim: DaemonProcess) -> Figure:
    """SIGKILL one instance; how long until the others' rows lead every partition."""
    killed = time.monotonic()
    victim.process.kill()
    victim.process.wait()
    _wait(lambda: sorted(p for led in _leads(engine, dead={victim.pid}).values() for p in led)
          == list(range(PARTITIONS)), interval=0.01)
    took = time.monotonic() - killed
    return Figure(scenario=SCENARIO, database=backend,
                  figure=f"{label}: a SIGKILLed instance's partitions led by the others after (heartbeat "
                         f"{HEARTBEAT:g} s)",
                  value=took / HEARTBEAT, unit=f"heartbeats ({took:.2f} s)", aim="≤ 2")


def _shares(backend: str, figure: str, counts: list[float]) -> Figure:
    """Each instance's part of *counts* (one per instance), the largest as the figure: even is 1/k."""
    total = sum(counts) or 1.0
    shares = ", ".join(f"{100 * c / total:.0f} %" for c in counts)
    return Figure(scenario=SCENARIO, database=backend, figure=f"{figure}: {shares}",
                  value=100 * max(counts) / total, unit="% the largest", aim=f"≈ {100 / len(counts):.0f} %")


def _leads(engine, dead: frozenset[int] | set[int] = frozenset()) -> dict[int, list[int]]:
    """What each instance's row says it leads, by pid, but for the *dead* and those leading nothing."""
    with engine.connect() as conn:
        alive = instances.running(conn, dt.datetime(2000, 1, 1, tzinfo=UTC))
    return {i.pid: instances.led(i) for i in alive if i.pid not in dead and instances.led(i)}


def _balanced(engine, count: int) -> bool:
    """Whether *count* instances lead every partition once, each its fair share (⌊N/k⌋ or ⌈N/k⌉ of N)."""
    shares = list(_leads(engine).values())
    return (len(shares) == count and sorted(p for led in shares for p in led) == list(range(PARTITIONS))
            and all(len(led) in (PARTITIONS // count, -(-PARTITIONS // count)) for led in shares))


def _counters(ports: list[int], name: str, **labels: str) -> list[float]:
    """A counter's total over its samples with these labels (all partitions), scraped from each instance."""
    totals = []
    for port in ports:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        totals.append(sum(sample.value for family in text_string_to_metric_families(text)
                          for sample in family.samples
                          if sample.name == name and labels.items() <= sample.labels.items()))
    return totals


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
