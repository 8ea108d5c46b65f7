"""Partitions (docs/scale-out.md): several daemon processes share the consuming, planning and firing."""

from __future__ import annotations

import datetime as dt
import math
import signal
import time
from collections import Counter

import pytest
from click.testing import CliRunner

from db import instances
from db.records import ChangeEvent
from scheduler.cli import main
from scheduler.consumer import event_partition
from scheduler.leader import Share, assign
from tests.booking import insert, seed
from tests.channels.servers import HttpServer, Reply
from tests.conftest import sql, wait_until
from tests.pipeline import add_workflow
from tests.test_daemon import count, start_daemon, stop_daemon
from tests.test_metrics import free_port, scrape, value

# --- the sharing, worked out alike by every instance -------------------------------------------------


@pytest.mark.parametrize("partitions", [1, 2, 5, 6, 7, 16, 64])
def test_every_partition_has_one_leader_and_each_instance_a_fair_share(partitions):
    for alive in range(1, 9):
        ids = [f"{n * 7919:032x}" for n in range(1, alive + 1)]
        shares = assign(partitions, ids)
        led = [p for share in shares.values() for p in share]
        assert sorted(led) == list(range(partitions))
        sizes = [len(share) for share in shares.values()]
        assert max(sizes) <= math.ceil(partitions / alive) and min(sizes) >= partitions // alive
        assert assign(partitions, list(reversed(ids))) == shares  # the same whatever order it is read in


def test_an_instance_joining_or_leaving_moves_only_what_must_move():
    ids = [f"{n:032x}" for n in (11, 22, 33)]
    before = assign(12, ids)
    joined = assign(12, ids + [f"{44:032x}"], holding=before)
    assert len(joined[f"{44:032x}"]) == 3
    assert all(joined[i] <= before[i] for i in ids)  # the newcomer's share came from the others, nothing else
    left = assign(12, ids[1:], holding=before)
    assert all(left[i] >= before[i] for i in ids[1:])  # the one gone's partitions went to the others
    assert assign(1, ids, holding={ids[2]: {0}}) == {ids[0]: set(), ids[1]: set(), ids[2]: {0}}  # the leader stays


def test_an_event_is_in_its_rows_partition_unless_it_names_its_own():
    event = ChangeEvent(id=1, table_name="appointments", row_id=17, op="INSERT", old=None, new={}, depth=0,
                        created_at=dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc))
    assert event_partition(event, 6) == 5 and not event.copy
    copied = ChangeEvent(**{**{k: getattr(event, k) for k in event.__slots__}, "partition_key": 3})
    assert event_partition(copied, 6) == 3 and copied.copy
    assert Share(6, {1, 5}).mine(17) and not Share(6, {1, 5}).mine(18)


def test_sqlite_refuses_more_than_one_partition(tmp_path):
    result = CliRunner().invoke(main, ["config", "check"], env={
        "APPTFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}", "APPTFLOW_CONFIG": "",
        "APPTFLOW_DAEMON_PARTITIONS": "3"})
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: APPTFLOW_DAEMON_PARTITIONS: [daemon] partitions: 3, but SQLite serves one instance, which leads "
        "the one partition; several need PostgreSQL or MySQL/MariaDB")



def test_two_installations_in_one_database_do_not_share_their_locks(db_url, backend):
    """Partition 0 of the installation in schema (PostgreSQL) or with prefix (MySQL/MariaDB) "a" and that of
    "b" are two locks; two sessions of one installation exclude each other."""
    if backend == "sqlite":
        pytest.skip("SQLite serves one instance and takes no lock")
    from db import leader
    from db.connect import connect

    option = "schema" if backend == "postgresql" else "prefix"
    engines = [connect(db_url, **{option: name}) for name in ("a_", "b_", "a_")]
    connections = [e.connect().execution_options(isolation_level="AUTOCOMMIT") for e in engines]
    try:
        first, other, same = connections
        assert leader.try_lock(first, leader.PARTITION, 0)
        assert leader.try_lock(other, leader.PARTITION, 0)  # another installation's partition 0
        assert not leader.try_lock(same, leader.PARTITION, 0)
        assert leader.taken(same, leader.PARTITION, range(3)) == {0}
        leader.unlock(first, leader.PARTITION, 0)
        assert leader.try_lock(same, leader.PARTITION, 0)
    finally:
        for conn, engine in zip(connections, engines):
            conn.close()
            engine.dispose()


# --- real daemon processes -------------------------------------------------------------------------------

PARTITIONS, HEARTBEAT = 6, 1.0
SHARED = {"APPTFLOW_DAEMON_PARTITIONS": str(PARTITIONS), "APPTFLOW_DAEMON_HEARTBEAT": f"{HEARTBEAT:g}s",
          "APPTFLOW_DAEMON_POLL_INTERVAL": "100ms", "APPTFLOW_DAEMON_LEASE": "2m", "APPTFLOW_DAEMON_WORKERS": "4"}


def _leads(engine, dead: set[int] = frozenset()) -> dict[int, list[int]]:
    """pid → the partitions its row says it leads, for the instances not stopped (but those *dead*, killed)."""
    with engine.connect() as conn:
        alive = instances.running(conn, dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc))
    return {i.pid: instances.led(i) for i in alive if i.pid not in dead}


def _settled(engine, alive: int, dead: set[int] = frozenset()) -> bool:
    """Every partition led once, by *alive* instances each within the fair share."""
    leads = {i: p for i, p in _leads(engine, dead).items() if p}
    led = sorted(p for share in leads.values() for p in share)
    return len(leads) == alive and led == list(range(PARTITIONS)) and \
        max(len(p) for p in leads.values()) <= math.ceil(PARTITIONS / alive)


def _book(engine, ids, starts: dt.datetime, how_many: int) -> list[int]:
    with engine.begin() as conn:  # the bookings of one transaction
        return [insert(conn, "appointments", customer_id=ids["customer"], service_id=ids["service"],
                       staff_id=ids["staff"], location_id=ids["location"], status="approved",
                       starts_at=starts.isoformat(), ends_at=(starts + dt.timedelta(minutes=45)).isoformat())
                for _ in range(how_many)]


def _arrived(receiver, route: str) -> Counter:
    return Counter(int(r.json()["id"]) for r in list(receiver.requests) if r.path == f"/{route}")


class Fleet:
    """apptflow run processes on one database, each serving its metrics."""

    def __init__(self, db_url: str, receiver):
        self.db_url, self.receiver, self.processes = db_url, receiver, []

    def start(self, **env) -> tuple:
        port = free_port()
        process = start_daemon(self.db_url, {**SHARED, "APPTFLOW_METRICS_LISTEN": f"127.0.0.1:{port}", **env})
        self.processes.append((process, port))
        return process, port

    def stop(self) -> list[str]:
        """Stop the ones still running; return what each logged."""
        return [stop_daemon(p) for p, _ in self.processes if p.poll() is None]


@pytest.fixture
def fleet(db_url, backend):
    if backend == "sqlite":
        pytest.skip("SQLite serves one instance (see test_sqlite_refuses_more_than_one_partition)")
    receiver = HttpServer(lambda request: Reply(status=200)).start()
    group = Fleet(db_url, receiver)
    yield group
    for log in group.stop():  # shown when the test fails
        print(log[-20000:])
    receiver.stop()


def test_instances_share_the_partitions_fire_their_own_and_take_over_a_killed_ones(engine, fleet):
    receiver = fleet.receiver
    for name, trigger in (("created", {"type": "appointment_created"}),
                          ("reminder", {"type": "appointment_starts", "offset": "-1m"})):
        add_workflow(engine, {"name": name, "trigger": trigger, "actions": [
            {"type": "webhook", "url": f"{receiver.url}/{name}", "json": {"id": "{{ appointment_id }}"}}]})
    ids = seed(engine)
    three = [fleet.start() for _ in range(3)]
    wait_until(lambda: _settled(engine, 3), timeout=60)
    assert sorted(len(p) for p in _leads(engine).values()) == [2, 2, 2]
    # the workflows' events (and their copies to the other partitions) consumed by whoever leads them
    wait_until(lambda: sql(engine, "SELECT count(*) FROM change_events WHERE processed_at IS NULL") == [(0,)],
               timeout=30)
    status = CliRunner().invoke(main, ["status"], env={"APPTFLOW_DATABASE_URL": fleet.db_url, "APPTFLOW_CONFIG": ""})
    lines = [line for line in status.output.splitlines() if line.startswith("daemon:")]
    assert status.exit_code == 0 and len(lines) == 3, status.output
    for pid, led in _leads(engine).items():
        assert any(f"(pid {pid})" in line and f"leads partitions {led[0]}, {led[1]} of 6, 0 events waiting there"
                   in line for line in lines), status.output

    # 900 bookings in one transaction, whose 900 reminders are due in the same second
    planned = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=8)
    booked = _book(engine, ids, planned + dt.timedelta(minutes=1), 900)
    wait_until(lambda: count(engine, "status = 'sent'") == 1800, timeout=180)
    assert _arrived(receiver, "created") == Counter(booked)  # each exactly once
    assert _arrived(receiver, "reminder") == Counter(booked)
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1800
    for _, port in three:  # every instance consumed and fired its share
        samples = scrape(port)
        assert value(samples, "apptflow_change_events_consumed_total") > 0
        assert value(samples, "apptflow_firings_total", outcome="fired") > 0

    # SIGKILL one: its partitions move to the two left, within two heartbeats
    (victim, _), survivors = three[0], three[1:]
    assert len(_leads(engine)[victim.pid]) == 2
    stop_daemon(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_until(lambda: _settled(engine, 2, {victim.pid}), timeout=30, interval=0.02)
    took = time.monotonic() - killed_at
    assert took <= 2 * HEARTBEAT + 0.5, f"takeover took {took:.2f}s, heartbeat {HEARTBEAT}s"
    planned = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=6)
    after_kill = _book(engine, ids, planned + dt.timedelta(minutes=1), 300)
    wait_until(lambda: _arrived(receiver, "reminder").keys() >= set(after_kill), timeout=120)

    # instances with another partition count refuse to run, in one line
    stranger, _ = fleet.start(APPTFLOW_DAEMON_PARTITIONS="4")
    stranger.wait(60)
    stranger.log.seek(0)
    said = stranger.log.read().decode().strip().splitlines()
    stranger.log.close()
    assert stranger.returncode == 1
    assert said[-1].startswith("Error: [daemon] partitions = 4 here, but 6 on the instance running on")

    # a fourth instance joins while reminders come due: it takes partitions, and nothing is sent twice
    planned = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=5)
    around_join = _book(engine, ids, planned + dt.timedelta(minutes=1), 300)
    wait_until(lambda: count(engine, "status = 'sent'") == 1800 + 600 + 300, timeout=60)  # their created hooks
    fourth, _ = fleet.start()
    wait_until(lambda: _settled(engine, 3, {victim.pid}), timeout=60)
    assert len(_leads(engine)[fourth.pid]) == 2
    wait_until(lambda: _arrived(receiver, "reminder").keys() >= set(around_join), timeout=120)
    logs = fleet.stop()
    everything = booked + after_kill + around_join
    assert _arrived(receiver, "created") == Counter(everything)
    assert _arrived(receiver, "reminder") == Counter(everything)
    assert count(engine) == 2 * len(everything)
    assert not [line for log in logs for line in log.splitlines() if "Traceback" in line]



# --- one process per partition, in-process: what each consumer and planner reads and writes ----------------


def _halves(engine):
    """Two consumers and planners on one database, leading partition 0 and 1 of 2."""
    from scheduler.catalogue import Catalogue
    from scheduler.consumer import EventConsumer
    from scheduler.planner import Planner

    now = dt.datetime.now(dt.timezone.utc)
    parts = []
    for partition in (0, 1):
        share = Share(2, {partition})
        catalogue = Catalogue()
        planner = Planner(engine, catalogue, clock=lambda: now, share=share)
        consumer = EventConsumer(engine, catalogue, after_commit=planner.after_batch, share=share)
        parts.append((consumer, planner))
    return parts, now


def _drain_both(first, second, now) -> int:
    """Both consumers until neither finds an event (a copy one writes is the other's)."""
    total = 0
    while (done := first.drain(now) + second.drain(now)):
        total += done
    return total


def test_each_partition_consumes_its_own_events_and_plans_its_own_jobs(engine):
    ids = seed(engine)
    add_workflow(engine, {"name": "r", "trigger": {"type": "appointment_starts", "offset": "-1h"},
                          "actions": [{"type": "email", "to": ["customer"], "subject": "s", "body": "b"}]})
    parts, now = _halves(engine)
    (first, first_planner), (second, second_planner) = parts
    starts = now + dt.timedelta(days=1)
    booked = _book(engine, ids, starts, 6)
    consumed = _drain_both(first, second, now)
    # each consumed its half of the bookings, and the workflow's events once, copying them to the other
    assert consumed == sql(engine, "SELECT count(*) FROM change_events")[0][0]
    copies = sql(engine, "SELECT table_name, partition_key FROM change_events WHERE partition_key IS NOT NULL")
    assert copies and {table for table, _ in copies} <= {"workflows", "workflow_actions"}
    assert sql(engine, "SELECT count(*) FROM change_events WHERE processed_at IS NULL") == [(0,)]
    jobs = {job_id for (job_id,) in sql(engine, "SELECT id FROM apscheduler_jobs")}
    assert jobs == {f"wf:1:appt:{a}" for a in booked}
    keys = dict(sql(engine, "SELECT id, partition_key FROM apscheduler_jobs"))
    assert {keys[f"wf:1:appt:{a}"] for a in booked} == set(booked)
    # each planner's store returns only its partition's jobs
    assert {j.id for j in first_planner.store.get_all_jobs()} == {f"wf:1:appt:{a}" for a in booked if a % 2 == 0}
    assert {j.id for j in second_planner.store.get_all_jobs()} == {f"wf:1:appt:{a}" for a in booked if a % 2 == 1}
    # a whole reconciliation of one partition leaves the other's jobs alone
    sql(engine, "DELETE FROM apscheduler_jobs")
    assert first_planner.reconcile(now) == (3, 0)
    assert {j for (j,) in sql(engine, "SELECT id FROM apscheduler_jobs")} == {
        f"wf:1:appt:{a}" for a in booked if a % 2 == 0}


def test_a_customers_change_is_copied_to_the_partitions_of_its_appointments(engine):
    ids = seed(engine)
    add_workflow(engine, {"name": "r", "trigger": {"type": "appointment_starts", "offset": "-1h"},
                          "filters": {"locales": ["fr"]},
                          "actions": [{"type": "email", "to": ["customer"], "subject": "s", "body": "b"}]})
    parts, now = _halves(engine)
    (first, _), (second, _) = parts
    booked = _book(engine, ids, now + dt.timedelta(days=1), 4)
    _drain_both(first, second, now)
    assert sql(engine, "SELECT count(*) FROM apscheduler_jobs") == [(0,)]  # the customer speaks no French yet
    sql(engine, "UPDATE customers SET locale = 'fr' WHERE id = :id", id=ids["customer"])
    owner, other = (first, second) if ids["customer"] % 2 == 0 else (second, first)
    assert owner.drain(now) == 1 and other.drain(now) == 1  # the change, then its copy
    assert {j for (j,) in sql(engine, "SELECT id FROM apscheduler_jobs")} == {f"wf:1:appt:{a}" for a in booked}


def test_a_workflow_added_in_another_partition_matches_the_bookings_after_it_at_once(engine):
    """The edit's copy comes later than the bookings behind it: the consumer reloads the workflows first."""
    ids = seed(engine)
    parts, now = _halves(engine)
    (first, _), (second, _) = parts
    _book(engine, ids, now + dt.timedelta(days=1), 2)  # one in each partition
    _drain_both(first, second, now)  # both have loaded the workflows: none
    workflow = add_workflow(engine, {"name": "c", "trigger": {"type": "appointment_created"},
                                     "actions": [{"type": "email", "to": ["customer"], "subject": "s", "body": "b"}]})
    booked = _book(engine, ids, now + dt.timedelta(days=1), 2)
    other = second if workflow % 2 == 0 else first  # the one not leading the workflow's event
    other.drain(now)  # before the owner has consumed (and copied) the workflow's events
    mine = [a for a in booked if (a % 2 == 1) == (other is second)]
    assert sql(engine, "SELECT subject_id FROM deliveries") == [(a,) for a in mine]
