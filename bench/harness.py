"""What every scenario needs: a fresh database, the daemon as a process, the floors, the figures."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from sqlalchemy import text

from db import schema
from db.connect import connect, own_table
from tests.booking import as_written, seed
from tests.mariadb import Server
from tests.pgcluster import Cluster
from tests.pipeline import add_workflow

UTC = dt.timezone.utc
# The floor's concurrency: as many threads as the daemon has delivery workers by default.
THREADS = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class Figure:
    """One line of the table: apptflow's figure beside the bare library's, and the aim."""

    scenario: str
    database: str
    figure: str
    value: float
    unit: str
    floor: float | None = None
    aim: str = "—"

    @property
    def ratio(self) -> float | None:
        """apptflow's figure over the floor's (a latency: lower is better; a rate: higher is)."""
        return None if not self.floor else self.value / self.floor


def percentile(values: list[float], q: float) -> float:
    """The *q* quantile (0..1) of *values*, nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class Databases:
    """Fresh databases on demand: a SQLite file, a database on a PostgreSQL cluster, or one on a MariaDB server."""

    def __init__(self, pg_url: str | None = None):
        self._root = Path(tempfile.mkdtemp(prefix="apptflow-bench-"))
        self._pg_url, self._cluster, self._count = pg_url, None, 0
        self._mariadb: Server | None = None

    def pg_server_url(self) -> str:
        if self._pg_url is None:
            self._cluster = Cluster()
            self._cluster.start()
            self._pg_url = self._cluster.url()
        return self._pg_url

    def mariadb_server(self) -> Server:
        """The throwaway MariaDB server, as the tests start it (raises ServerError without its binaries)."""
        if self._mariadb is None:
            server = Server()
            try:
                server.start()
            except BaseException:
                server.destroy()
                raise
            self._mariadb = server
        return self._mariadb

    def server_cpu_seconds(self, backend: str) -> float | None:
        """User + system CPU time the database server has used so far (MariaDB: one process); None elsewhere."""
        if backend != "mariadb" or self._mariadb is None:
            return None
        pid = int((self._mariadb.root / "pid").read_text().strip())
        return process_cpu_seconds(pid)

    def fresh(self, backend: str) -> str:
        """The URL of a new database with apptflow's schema."""
        url = self.empty(backend)
        engine = connect(url)
        schema.upgrade(engine)
        engine.dispose()
        return url

    def empty(self, backend: str) -> str:
        """The URL of a new, empty database."""
        self._count += 1
        if backend == "sqlite":
            url = f"sqlite:///{self._root / f'bench{self._count}.db'}"
        elif backend == "mariadb":
            name = f"apptflow_bench_{os.getpid()}_{self._count}"
            self.mariadb_server().sql(f"CREATE DATABASE {name}")
            url = self.mariadb_server().url(name)
        else:
            server = connect(self.pg_server_url(), isolation_level="AUTOCOMMIT")
            name = f"apptflow_bench_{os.getpid()}_{self._count}"
            with server.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
            server.dispose()
            url = str(server.url.set(database=name).render_as_string(hide_password=False))
        return url

    def version(self, backend: str) -> str:
        if backend == "sqlite":
            import sqlite3
            return f"SQLite {sqlite3.sqlite_version}"
        if backend == "mariadb":
            engine = connect(self.mariadb_server().url())
            with engine.connect() as conn:
                version = conn.exec_driver_sql("SELECT VERSION()").scalar()
            engine.dispose()
            return f"MariaDB {version.split('-')[0]}"
        engine = connect(self.pg_server_url())
        with engine.connect() as conn:
            version = conn.exec_driver_sql("SHOW server_version").scalar()
        engine.dispose()
        return f"PostgreSQL {version}"

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.destroy()
        if self._mariadb is not None:
            self._mariadb.destroy()
        shutil.rmtree(self._root, ignore_errors=True)


def settle(cpu_seconds, quiet: float = 0.02, timeout: float = 600) -> None:
    """Wait until *cpu_seconds* (a process's CPU time so far) grows by less than *quiet* over a second."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds()
        time.sleep(1.0)
        if cpu_seconds() - before < quiet:
            return


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time process *pid* (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def seed_services(engine, count: int) -> dict[str, int]:
    """The seeded location, staff and customer, and *count* services (``service``, ``service2``, ...)."""
    ids = seed(engine)
    with engine.begin() as conn:
        for n in range(2, count + 1):
            ids[f"service{n}"] = conn.execute(text(
                "INSERT INTO services (name, price, duration_minutes) VALUES (:n, 30, 45) RETURNING id"),
                {"n": f"Service {n}"}).scalar_one()
    return ids


def webhook_workflow(engine, receiver_url: str, path: str, trigger: dict, service: int) -> int:
    """A workflow posting the appointment id (and planned time) to the receiver, for one service."""
    return add_workflow(engine, {
        "name": path, "trigger": trigger, "filters": {"services": [service]},
        "actions": [{"type": "webhook", "url": f"{receiver_url}{path}",
                     "json": {"id": "{{ appointment_id }}"}}]})


def insert_appointments(engine, ids: dict[str, int], service: int, times: list[dt.datetime],
                        length: dt.timedelta = dt.timedelta(minutes=45)) -> tuple[list[int], float]:
    """Insert one appointment per start time in one transaction, as a booking application would.

    Returns the new ids and the wall-clock time just after the commit.
    """
    rows = [{"c": ids["customer"], "s": service, "st": ids["staff"], "l": ids["location"],
             "a": as_written(engine, t.isoformat()), "b": as_written(engine, (t + length).isoformat())}
            for t in times]
    statement = text("INSERT INTO appointments (customer_id, service_id, staff_id, location_id, starts_at, "
                     "ends_at, status, started_by) VALUES (:c, :s, :st, :l, :a, :b, 'approved', 'frontend')")
    with engine.begin() as conn:
        before = conn.execute(text("SELECT coalesce(max(id), 0) FROM appointments")).scalar_one()
        for start in range(0, len(rows), 5000):
            conn.execute(statement, rows[start:start + 5000])
        new = list(conn.execute(text("SELECT id FROM appointments WHERE id > :b ORDER BY id"), {"b": before}).scalars())
    return new, time.time()


def mark_events_processed(engine) -> None:
    """As if a daemon had consumed every change event so far (for scenarios that start from a quiet state)."""
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {own_table(conn, 'change_events')} SET processed_at = created_at "
                          "WHERE processed_at IS NULL"))


class DaemonProcess:
    """``apptflow run`` as its own process, default settings but for loopback webhooks."""

    def __init__(self, url: str, **settings: str):
        env = {**os.environ, "APPTFLOW_DATABASE_URL": url, "APPTFLOW_CONFIG": "",
               "APPTFLOW_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true", **settings}
        self.log = tempfile.NamedTemporaryFile(prefix="apptflow-bench-daemon-", suffix=".log", delete=False)
        self.process = subprocess.Popen([sys.executable, "-m", "scheduler", "run"], env=env,
                                        stdout=subprocess.DEVNULL, stderr=self.log)
        self.pid = self.process.pid

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while b"apptflow running" not in Path(self.log.name).read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not start: {Path(self.log.name).read_text()[-2000:]}")
            time.sleep(0.05)

    def cpu_seconds(self) -> float:
        """User + system CPU time the daemon has used so far."""
        return process_cpu_seconds(self.pid)

    def memory(self) -> tuple[float, float]:
        """(current, peak) resident memory in MB."""
        status = dict(line.split(":", 1) for line in Path(f"/proc/{self.pid}/status").read_text().splitlines())
        return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024

    def settle(self, quiet: float = 0.02, timeout: float = 600) -> None:
        """Wait until the daemon uses less than *quiet* of a core over a second (its start-up work done)."""
        settle(self.cpu_seconds, quiet, timeout)

    def stop(self) -> str:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        text_ = Path(self.log.name).read_text(errors="replace")
        os.unlink(self.log.name)
        return text_


def report_errors(log: str, where: str) -> None:
    """Say on stderr if a daemon's log (what ``DaemonProcess.stop`` returns) has errors, with the first."""
    problems = [line for line in log.splitlines() if "Traceback" in line or " ERROR " in line]
    if problems:
        print(f"  daemon log ({where}) has errors, first: {problems[0]}", file=sys.stderr)


def bare_requests(url: str, bodies: list[str], *, start_at: float | None = None) -> float:
    """Send every body to *url* with bare ``requests`` (a Session per thread, THREADS threads).

    Starts at the wall-clock time *start_at* if given; returns the seconds from start to the last answer.
    """
    local = threading.local()

    def post(body: str) -> None:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        session.post(url, data=body.encode(), headers={"Content-Type": "application/json"}, timeout=30).close()

    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        if start_at is not None:
            time.sleep(max(0.0, start_at - time.time()))
        began = time.perf_counter()
        list(pool.map(post, bodies))
        return time.perf_counter() - began
