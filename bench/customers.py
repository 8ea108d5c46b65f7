"""Customers for the idle scenario: a birthday each, a zone for some, a past visit for a tenth of them,
and the three recurring workflows (a staff agenda, a birthday greeting, a recall) watching them."""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import text

from tests.booking import as_written
from tests.pipeline import add_workflow

ZONES = (None, "Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
CHUNK = 10_000


def add_customers(engine, ids: dict[str, int], count: int, now: dt.datetime, seed: int = 23) -> None:
    """*count* customers born on days spread over the year; one in ten with a completed visit that ended
    within the last year (their change events are to be marked consumed by the caller)."""
    rng = random.Random(seed)
    people = text("INSERT INTO customers (first_name, email, timezone, birthday) VALUES (:f, :e, :z, :b)")
    visits = text("INSERT INTO appointments (customer_id, service_id, staff_id, location_id, starts_at, ends_at, "
                  "status, started_by) VALUES (:c, :s, :st, :l, :a, :b, 'completed', 'frontend')")
    with engine.begin() as conn:
        first = conn.execute(text("SELECT coalesce(max(id), 0) FROM customers")).scalar_one() + 1
        for start in range(0, count, CHUNK):
            conn.execute(people, [{"f": f"C{n}", "e": f"c{n}@example.test", "z": rng.choice(ZONES),
                                   "b": dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20000))}
                                  for n in range(start, min(count, start + CHUNK))])
        for start in range(0, count // 10, CHUNK):
            rows = []
            for n in range(start, min(count // 10, start + CHUNK)):
                ended = now - dt.timedelta(minutes=rng.randrange(365 * 24 * 60))
                rows.append({"c": first + n * 10, "s": ids["service"], "st": ids["staff"], "l": ids["location"],
                             "a": as_written(engine, (ended - dt.timedelta(hours=1)).isoformat()),
                             "b": as_written(engine, ended.isoformat())})
            conn.execute(visits, rows)


def recurring_workflows(engine) -> None:
    """A staff agenda every evening, a birthday greeting, a recall after six months."""
    mail = {"type": "email", "to": ["customer"], "subject": "{{ customer_first_name }}", "body": "b"}
    add_workflow(engine, {"name": "agenda", "trigger": {"type": "schedule", "cron": "0 18 * * *", "for_each": "staff",
                                                        "window": "1d from tomorrow"},
                          "actions": [{**mail, "to": ["staff"], "subject": "{{ appointments | length }}"}]})
    add_workflow(engine, {"name": "birthday", "trigger": {"type": "customer_birthday", "time": "09:00"},
                          "actions": [mail]})
    add_workflow(engine, {"name": "recall", "trigger": {"type": "customer_inactive", "after": "180d",
                                                        "time": "10:00"}, "actions": [mail]})
