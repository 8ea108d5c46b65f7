"""Event latency, timer accuracy and bursts: a real daemon process, bookings written with plain SQL.

Each database gets one daemon (default settings) and three webhook workflows,
one per service so that the scenarios do not feed each other: "created" for
event latency, "created" for bursts, "1 minute before the start" for timers.
The floors run first, with no daemon: a minimal LISTEN/NOTIFY (or polling, at
the daemon's default interval: 1 s on SQLite, 200 ms on MariaDB) consumer for
latency, bare ``requests`` with the daemon's concurrency for timers and
bursts, against the same receiver.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from dataclasses import dataclass

import requests
from sqlalchemy import text

from bench.harness import (
    UTC,
    DaemonProcess,
    Figure,
    bare_requests,
    insert_appointments,
    mark_events_processed,
    percentile,
    report_errors,
    seed_services,
    webhook_workflow,
)
from bench.receiver import Receiver
from db.connect import connect, own_table
from scheduler.config import load_config, seconds

BEFORE = dt.timedelta(minutes=1)
BURST_AIMS = {"postgresql": "≥ 0.5 × floor", "sqlite": "≥ 0.3 × floor"}  # the project's; none for MariaDB yet


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    latency: tuple[tuple[float, int], ...]  # (bookings per second, how many)
    isolated: int  # timers, one a second apart... ish (0: none)
    same_second: tuple[int, ...]
    burst: int
    lead: float = 5.0  # seconds from booking to the first firing, at least (more for many firings)


FULL = Sizes(latency=((3, 300), (50, 1000)), isolated=20, same_second=(1000, 10000), burst=10000)
QUICK = Sizes(latency=((50, 20),), isolated=2, same_second=(50,), burst=200, lead=2.5)
QUICKER = Sizes(latency=((50, 10),), isolated=0, same_second=(20,), burst=100, lead=1.0)


def run(url: str, backend: str, sizes: Sizes) -> list[Figure]:
    engine = connect(url)
    receiver = Receiver()
    ids = seed_services(engine, 3)
    latency_service, burst_service, timer_service = ids["service"], ids["service2"], ids["service3"]
    try:
        for path, trigger, service in (("/latency", {"type": "appointment_created"}, latency_service),
                                       ("/burst", {"type": "appointment_created"}, burst_service),
                                       ("/timer", {"type": "appointment_starts", "offset": "-1m"}, timer_service)):
            webhook_workflow(engine, receiver.url, path, trigger, service)
        floors = _floors(engine, url, backend, receiver, ids, sizes)
        mark_events_processed(engine)  # the floors' bookings are not the daemon's to deliver
        daemon = DaemonProcess(url)
        try:
            daemon.wait_ready()
            figures = _apptflow(engine, backend, receiver, ids, sizes, floors)
        finally:
            report_errors(daemon.stop(), backend)
        return figures
    finally:
        receiver.stop()
        engine.dispose()


# --- floors -------------------------------------------------------------------------------------

def _floors(engine, url, backend, receiver, ids, sizes) -> dict:
    floors = {}
    consumer = subprocess.Popen([sys.executable, "-m", "bench.floor", url, receiver.url, str(_poll_interval(url))],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert consumer.stdout.readline().strip() == "ready"
        for rate, count in sizes.latency:
            floors[("latency", rate)] = _steady(engine, receiver, ids, ids["service"], rate, count, "/floor")
    finally:
        consumer.terminate()
        consumer.wait(10)
        consumer.stdout.close()
    receiver.reset()
    start, session = time.time() + 1.0, requests.Session()
    for n in range(sizes.isolated):  # one request at each firing's time
        time.sleep(max(0.0, start + 1.3 * n - time.time()))
        session.post(f"{receiver.url}/floor", data=json.dumps({"id": str(n)}), timeout=30).close()
    session.close()
    floors["isolated"] = [t - (start + 1.3 * n) for n, (t, _, _) in enumerate(receiver.arrivals("/floor"))]
    for count in sizes.same_second:
        floors[("timer", count)] = same_second_floor(receiver, count)
    floors["burst"] = burst_floor(receiver, sizes.burst)
    return floors


def same_second_floor(receiver: Receiver, count: int) -> list[float]:
    """Bare ``requests`` sending *count* requests at once at a given second, with the daemon's concurrency:
    the lateness of each at the receiver, in seconds."""
    receiver.reset()
    start = time.time() + 1.0
    bare_requests(f"{receiver.url}/floor", [json.dumps({"id": str(n)}) for n in range(count)], start_at=start)
    return [t - start for t, _, _ in receiver.arrivals("/floor")]


def burst_floor(receiver: Receiver, count: int) -> float:
    """Bare ``requests`` sending *count* requests as fast as the daemon's concurrency allows: per second."""
    receiver.reset()
    return count / bare_requests(f"{receiver.url}/floor", [json.dumps({"id": str(n)}) for n in range(count)])


def _poll_interval(url: str) -> float:
    """The daemon's default poll interval on this database, in seconds: the floor polls as often."""
    return seconds(load_config(None, environ={"APPTFLOW_DATABASE_URL": url}).get("daemon", "poll_interval"))


# --- apptflow -----------------------------------------------------------------------------------

def _apptflow(engine, backend, receiver, ids, sizes, floors) -> list[Figure]:
    figures = []
    # warm up: the first booking also waits for LISTEN and the first channel to be set up
    _steady(engine, receiver, ids, ids["service"], 5, 3, "/latency")
    for rate, count in sizes.latency:
        ours, floor = _steady(engine, receiver, ids, ids["service"], rate, count, "/latency"), floors[("latency", rate)]
        aims = _latency_aims(backend, rate)
        for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            figures.append(Figure(scenario="event latency", database=backend,
                                  figure=f"{count} bookings at {rate:g}/s: commit → received, {label}",
                                  value=percentile(ours, q) * 1000, unit="ms",
                                  floor=percentile(floor, q) * 1000, aim=aims.get(label, "—")))
    if sizes.isolated:
        figures += _timers(engine, backend, receiver, ids, sizes.isolated, floors, isolated=True, lead=sizes.lead)
    for count in sizes.same_second:
        figures += _timers(engine, backend, receiver, ids, count, floors, isolated=False, lead=sizes.lead)
    figures.append(_burst(engine, receiver, ids, sizes.burst, floors["burst"], backend))
    return figures


def _latency_aims(backend: str, rate: float) -> dict[str, str]:
    if backend != "postgresql":
        return {}
    if rate <= 3:
        return {"p50": "≤ 10 ms", "p99": "≤ 25 ms"}
    if rate <= 50:
        return {"p99": "≤ 50 ms"}
    return {}


def _steady(engine, receiver, ids, service, rate, count, path) -> list[float]:
    """Book *count* appointments at *rate* a second, one transaction each; seconds from commit to arrival."""
    receiver.reset()
    committed = {}
    began = time.monotonic()
    starts = dt.datetime.now(UTC) + dt.timedelta(days=1)
    for n in range(count):
        time.sleep(max(0.0, began + n / rate - time.monotonic()))
        [appointment], at = insert_appointments(engine, ids, service, [starts])
        committed[str(appointment)] = at
    arrivals = receiver.wait_for(path, count, timeout=60 + count / 10)
    return [t - committed[json.loads(body)["id"]] for t, _, body in arrivals
            if json.loads(body)["id"] in committed]


def _timers(engine, backend, receiver, ids, count, floors, *, isolated: bool, lead: float) -> list[Figure]:
    """*count* reminders, all due at one second (or a second and a bit apart): lateness at the receiver."""
    late, planning = timer_lateness(engine, receiver, ids, ids["service3"], count, isolated=isolated, lead=lead)
    floor = floors["isolated"] if isolated else floors[("timer", count)]
    what = f"{count} isolated firings" if isolated else f"{count} firings due in the same second"
    aim = {} if isolated else ({"p99": "≤ 250 ms"} if count <= 1000 else {"p99": "≤ 2 s"})
    figures = [Figure(scenario="timer accuracy", database=backend, figure=f"{what}: lateness {label}",
                      value=percentile(late, q) * 1000, unit="ms", floor=percentile(floor, q) * 1000,
                      aim=aim.get(label, "—"))
               for label, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))]
    figures.append(Figure(scenario="timer accuracy", database=backend, figure=f"{what}: delivered / early",
                          value=len(late), unit=f"of {count}, {sum(1 for x in late if x < 0)} early", aim="all, 0 early"))
    if not isolated:
        figures.append(Figure(scenario="timer accuracy", database=backend,
                              figure=f"{what}: commit → all {count} jobs planned", value=planning, unit="s"))
    return figures


def timer_lateness(engine, receiver: Receiver, ids: dict[str, int], service: int, count: int, *, isolated: bool,
                   lead: float) -> tuple[list[float], float]:
    """Book *count* appointments of *service* (its workflow posts to ``/timer`` a minute before the start),
    their reminders all due at one second (or 1.3 s apart), *lead* seconds and a bit from now.

    Returns each reminder's lateness at the receiver and the seconds from the commit until APScheduler's
    table held every job (or until the first was due, if that came first).
    """
    receiver.reset()
    lead += count / 400  # time to plan the jobs before the first is due
    first = dt.datetime.fromtimestamp(round(time.time() + lead), UTC)
    planned = [first + dt.timedelta(seconds=1.3 * n) if isolated else first for n in range(count)]
    booked, committed = insert_appointments(engine, ids, service, [p + BEFORE for p in planned])
    planned_of = {str(a): p.timestamp() for a, p in zip(booked, planned, strict=True)}
    planning = _wait_planned(engine, count, deadline=first.timestamp())
    arrivals = receiver.wait_for("/timer", count, timeout=lead + 60 + count / 20 + 1.3 * count * isolated)
    return [t - planned_of[json.loads(body)["id"]] for t, _, body in arrivals], planning - committed


def _wait_planned(engine, count: int, deadline: float) -> float:
    """When APScheduler's table held the *count* new jobs (or the firing time, if that came first)."""
    jobs = own_table(engine, "apscheduler_jobs")
    while time.time() < deadline:
        with engine.connect() as conn:
            if conn.execute(text(f"SELECT count(*) FROM {jobs}")).scalar_one() >= count:
                return time.time()
        time.sleep(0.1)
    return time.time()


def _burst(engine, receiver, ids, count, floor, backend) -> Figure:
    rate, received = burst_rate(engine, receiver, ids, ids["service2"], count)
    return Figure(scenario="burst", database=backend,
                  figure=f"{count} bookings in one transaction → webhooks/s ({received} received)",
                  value=rate, unit="/s", floor=floor, aim=BURST_AIMS.get(backend, "—"))


def burst_rate(engine, receiver: Receiver, ids: dict[str, int], service: int, count: int) -> tuple[float, int]:
    """Book *count* appointments of *service* (its workflow posts to ``/burst`` when one is created) in one
    transaction: webhooks per second at the receiver from the commit to the last, and how many arrived."""
    receiver.reset()
    start = dt.datetime.now(UTC) + dt.timedelta(days=1)
    _, committed = insert_appointments(engine, ids, service, [start] * count)
    arrivals = receiver.wait_for("/burst", count, timeout=60 + count / 20)
    return (len(arrivals) / (max(t for t, _, _ in arrivals) - committed) if arrivals else 0.0), len(arrivals)
