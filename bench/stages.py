"""Where a delivery's time goes: each stage of the pipeline timed on its own, one thread, in this process.

N bookings in one transaction with an ``appointment_created`` webhook; the
consumer drains them, then one worker delivers them batch after batch. Each
stage's function is wrapped with a timer (the code path is the daemon's own),
and the table gives its mean cost per delivery. The floor of the send stage
is one bare ``requests.Session`` posting the same bodies to the same receiver.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import defaultdict

import requests

from bench.harness import UTC, Figure, insert_appointments, seed_services, webhook_workflow
from bench.receiver import Receiver
from db import deliveries
from db.connect import connect
from scheduler import consumer, transports, workers
from tests.pipeline import Pipeline, make_config

# stage → (module or class, attribute): wrapped where the daemon's code looks them up.
STAGES = {
    "consume: claim events, read bookings, match, write deliveries": (consumer.EventConsumer, "process_batch"),
    "claim a batch of deliveries": (deliveries, "claim_due_batch"),
    "read workflows and bookings for the batch": (workers.DeliveryWorker, "_load_all"),
    "keywords (context)": (workers, "build_context"),
    "render the templates": (workers, "render_action"),
    "send (HTTP)": (transports.Transports, "send"),
    "record the outcomes": (workers.DeliveryWorker, "_record"),
}


def _timed(spent: dict[str, float], stage: str, function):
    def timed(*args, **kwargs):
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[stage] += time.perf_counter() - began
    return timed


def run(url: str, backend: str, count: int) -> list[Figure]:
    engine = connect(url)
    receiver = Receiver()
    ids = seed_services(engine, 1)
    webhook_workflow(engine, receiver.url, "/stages", {"type": "appointment_created"}, ids["service"])
    pipeline = Pipeline(engine, make_config(url, APPTFLOW_DAEMON_DRY_RUN="false"))
    pipeline.worker.batch = 10  # as the daemon's workers
    insert_appointments(engine, ids, ids["service"], [dt.datetime.now(UTC) + dt.timedelta(days=1)] * count)
    spent: dict[str, float] = defaultdict(float)
    originals = {stage: vars(owner)[name] for stage, (owner, name) in STAGES.items()}
    for stage, (owner, name) in STAGES.items():
        timed = _timed(spent, stage, getattr(owner, name))
        setattr(owner, name, staticmethod(timed) if isinstance(originals[stage], staticmethod) else timed)
    try:
        now = dt.datetime.now(UTC) + dt.timedelta(seconds=1)
        began = time.perf_counter()
        pipeline.consumer.drain(now)
        delivered = 0
        while (done := pipeline.worker.work(now)):
            delivered += len(done)
        total = time.perf_counter() - began
    finally:
        for stage, (owner, name) in STAGES.items():
            setattr(owner, name, originals[stage])
        pipeline.close()
    assert delivered == count == len(receiver.arrivals("/stages")), (delivered, count)
    floor = _bare_send(receiver, count)
    receiver.stop()
    engine.dispose()
    figures = [Figure(scenario="stages", database=backend, figure=f"per delivery: {stage}",
                      value=spent[stage] / count * 1000, unit="ms",
                      floor=floor * 1000 if stage.startswith("send") else None) for stage in STAGES]
    figures.append(Figure(scenario="stages", database=backend, figure="per delivery: all, one thread",
                          value=total / count * 1000, unit="ms", floor=floor * 1000))
    return figures


def _bare_send(receiver: Receiver, count: int) -> float:
    """Seconds per request for one bare requests.Session posting the same kind of body."""
    session = requests.Session()
    began = time.perf_counter()
    for n in range(count):
        session.post(f"{receiver.url}/floor", data=json.dumps({"id": str(n)}),
                     headers={"Content-Type": "application/json"}, timeout=30).close()
    elapsed = time.perf_counter() - began
    session.close()
    return elapsed / count
