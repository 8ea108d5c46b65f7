"""Helpers for driving the pipeline step by step, with time passed in."""

from __future__ import annotations

import datetime as dt
import random

from db import workflows as store
from engine.document import split_document, to_document
from engine.validation import parse_workflow
from scheduler.catalogue import Catalogue
from scheduler.config import load_config
from scheduler.consumer import EventConsumer
from scheduler.daemon import retry_policy
from scheduler.transports import Transports
from scheduler.workers import DeliveryWorker

NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.timezone.utc)


def make_config(db_url: str, **overrides: str):
    """Configuration for tests: dry run, loopback webhooks allowed, a company; *overrides* as env names."""
    environ = {
        "APPTFLOW_DATABASE_URL": db_url,
        "APPTFLOW_DAEMON_DRY_RUN": "true",
        "APPTFLOW_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        "APPTFLOW_COMPANY_NAME": "Salon Lumière",
        **overrides,
    }
    return load_config(None, environ=environ)


def add_workflow(engine, document: dict) -> int:
    """Add a workflow the way `apptflow workflow add` does."""
    with engine.begin() as conn:
        return store.insert_workflow(conn, split_document(to_document(parse_workflow(document))))


def email(name: str, trigger: dict, subject: str, body: str = "b", **extra) -> dict:
    """A workflow document of one email to the customer."""
    return {"name": name, "trigger": trigger, **extra,
            "actions": [{"type": "email", "to": ["customer"], "subject": subject, "body": body}]}


class Pipeline:
    """The consumer and one delivery worker, stepped by hand."""

    def __init__(self, engine, config, *, transports: Transports | None = None):
        self.engine = engine
        self.transports = transports or Transports(config)
        self.catalogue = Catalogue()
        self.consumer = EventConsumer(engine, self.catalogue,
                                      max_depth=config.get("daemon", "max_chain_depth"),
                                      send_window=config.get("workflows", "send_window"))
        self.worker = DeliveryWorker(engine, self.transports, company=dict(config.section("company")),
                                     policy=retry_policy(config), rng=random.Random(7),
                                     send_window=config.get("workflows", "send_window"))

    def run(self, now: dt.datetime = NOW) -> list:
        """Handle every waiting event, then attempt every due delivery; return the outcomes."""
        outcomes = []
        while True:
            self.consumer.drain(now)
            outcome = self.worker.work_one(now)
            if outcome is None:
                return outcomes
            outcomes.append(outcome)

    def sent(self, channel: str) -> list:
        """What the dry-run channel recorded."""
        return self.transports.channel(channel).sent

    def close(self) -> None:
        self.transports.close()
