"""``apptflow demo``: a booking's life on the embedded default, every message printed as it is produced.

The demo plays the booking application, which writes plain SQL and never
calls apptflow; that is why its writes are literal SQL here rather than
queries from ``db/``.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

from db import schema
from db import workflows as store
from db.connect import connect
from engine.document import load_yaml, split_document, to_document
from engine.validation import parse_workflow
from scheduler.config import load_config
from scheduler.daemon import Daemon
from scheduler.transports import Transports

# What the demo configures and the workflows it adds: data, beside this module.
SCRIPT = Path(__file__).with_name("demo.yaml")


def script() -> dict:
    return load_yaml(SCRIPT.read_text(encoding="utf-8"))


def environment(settings: dict[str, dict], url: str) -> dict[str, str]:
    """The demo's settings as ``APPTFLOW_<SECTION>_<KEY>`` variables, with its database."""
    written = {f"APPTFLOW_{section}_{key}".upper(): str(value).lower() if isinstance(value, bool) else str(value)
               for section, keys in settings.items() for key, value in keys.items()}
    return {**written, "APPTFLOW_DATABASE_URL": url}


def describe(message) -> str:
    """One line (or a few) saying what a message is and to whom it goes."""
    summary = getattr(message, "summary", None)
    return summary() if summary is not None else repr(message)


class Demo:
    """Seeds a database, runs the daemon in dry run, and plays a booking application's writes."""

    def __init__(self, database: Path, echo: Callable[[str], None]):
        self.echo = echo
        self.url = f"sqlite:///{database}"
        self.engine: Engine = connect(self.url)
        self.produced = 0
        self.lock = threading.Lock()
        self.mark = time.monotonic()

    def sql(self, statement: str, **params) -> int | None:
        with self.engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return result.scalar_one() if result.returns_rows else None

    def observe(self, delivery, message, receipt) -> None:
        lateness = ""
        if "fire_time" in delivery.context:
            planned = dt.datetime.fromisoformat(delivery.context["fire_time"])
            lateness = f" [{(dt.datetime.now(dt.timezone.utc) - planned).total_seconds():.3f}s after its planned time]"
        with self.lock:
            self.produced += 1
            self.echo(f"  +{time.monotonic() - self.mark:.3f}s  {describe(message)}{lateness}")

    def step(self, title: str, statement: str, expect: int, **params) -> int | None:
        """Write like the booking application, then wait for *expect* more messages."""
        self.echo(f"\n{title}")
        target = self.produced + expect
        self.mark = time.monotonic()
        result = self.sql(statement, **params)
        self._wait_for(target, 15)
        return result

    def wait(self, title: str, expect: int, timeout: float) -> None:
        """Write nothing; wait for *expect* more messages (a time-offset firing)."""
        self.echo(f"\n{title}")
        self._wait_for(self.produced + expect, timeout)

    def _wait_for(self, target: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.produced < target and time.monotonic() < deadline:
            time.sleep(0.02)

    def seed(self, workflows: list[dict]) -> dict[str, int]:
        schema.upgrade(self.engine)
        with self.engine.begin() as conn:
            for document in workflows:
                store.insert_workflow(conn, split_document(to_document(parse_workflow(document))))
        return {
            "location": self.sql("INSERT INTO locations (name, address, timezone) VALUES "
                                 "('Le Marais', '12 rue des Archives, Paris', 'Europe/Paris') RETURNING id"),
            "service": self.sql("INSERT INTO services (name, price, duration_minutes) VALUES "
                                "('Haircut', 45, 45) RETURNING id"),
            "staff": self.sql("INSERT INTO staff (name, email, phone, telegram_chat_id) VALUES "
                              "('Camille', 'camille@salon.example', '+33612345678', '424242') RETURNING id"),
        }

    def play(self, ids: dict[str, int]) -> None:
        # An hour and 5 seconds ahead: the "an hour before" reminder fires 5 seconds after the booking.
        start = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1, seconds=5)).replace(microsecond=0)
        customer = self.step("A customer signs up", (
            "INSERT INTO customers (first_name, last_name, email, phone, locale) VALUES "
            "('Ada', 'Lovelace', 'ada@example.com', '+447700900123', 'en_GB') RETURNING id"), 1)
        appointment = self.step("She books a haircut on the website, starting in an hour and 5 seconds: the "
                                "confirmation in her language (en_GB: the en variant) with a calendar invite", (
            "INSERT INTO appointments (customer_id, service_id, staff_id, location_id, starts_at, ends_at, "
            "status, started_by) VALUES (:c, :s, :t, :l, :start, :end, 'pending', 'frontend') RETURNING id"),
            2, c=customer, s=ids["service"], t=ids["staff"], l=ids["location"],
            start=start.isoformat(), end=(start + dt.timedelta(minutes=45)).isoformat())
        self.wait("Five seconds later the reminder an hour before the start goes out", 1, timeout=10)
        later = start + dt.timedelta(hours=3)
        self.step("She moves it three hours later (the invite moves the event in her calendar)", (
            "UPDATE appointments SET starts_at = :start, ends_at = :end WHERE id = :id"), 2,
            id=appointment, start=later.isoformat(), end=(later + dt.timedelta(minutes=45)).isoformat())
        self.step("The salon approves it", "UPDATE appointments SET status = 'approved' WHERE id = :id", 1,
                  id=appointment)
        self.step("She cancels (the event leaves her calendar)",
                  "UPDATE appointments SET status = 'canceled' WHERE id = :id", 2, id=appointment)


def run_demo(database: Path, echo: Callable[[str], None]) -> int:
    """Play the demo; return how many messages were produced."""
    demo, played = Demo(database, echo), script()
    config = load_config(None, environ=environment(played["settings"], demo.url))
    daemon = Daemon(config, engine=demo.engine, transports=Transports(config, observer=demo.observe))
    echo(f"apptflow demo on {demo.url} (dry run: messages are printed, not sent)")
    ids = demo.seed(played["workflows"])
    try:
        daemon.start()
        demo.play(ids)
    finally:
        daemon.stop()
        demo.engine.dispose()
    return demo.produced
