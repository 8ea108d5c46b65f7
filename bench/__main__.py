"""``python -m bench [--quick]``: every scenario on SQLite, PostgreSQL and MariaDB, one table of figures and floors.

Each figure stands beside its floor, the bare library doing the same work in
the same run on the same machine, and the ratio between them; the aims are
the project's. ``--quick`` runs every scenario small, in about two minutes, to
show that the suite works; its numbers mean little. A database server whose
binaries are missing is skipped with the reason, except under CI (``CI`` true),
where the test suite has already required it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import subprocess
import sys
import time

from bench import capture, delivery, idle, reconcile, scaleout, stages
from bench.harness import Databases, Figure
from tests.mariadb import ServerError

SCENARIOS = ("stages", "delivery", "reconcile", "idle", "capture", "scaleout")
BACKENDS = ("sqlite", "postgresql", "mariadb")
UNDER_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _machine(databases: Databases, backends: list[str]) -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    versions = ", ".join(databases.version(b) for b in backends)
    return (f"{dt.date.today().isoformat()}, commit {commit}: {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, {versions}")


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) >= 0.01 or value == 0 else f"{value:.2g}"


def table(figures: list[Figure]) -> str:
    lines = ["| scenario | db | figure | apptflow | floor | ratio | aim |", "|---|---|---|---|---|---|---|"]
    for f in figures:
        ratio = "—" if f.ratio is None else f"{f.ratio:.2f}"
        floor = "—" if f.floor is None else f"{_number(f.floor)} {f.unit}"
        lines.append(f"| {f.scenario} | {f.database} | {f.figure} | {_number(f.value)} {f.unit} | {floor} | "
                     f"{ratio} | {f.aim} |")
    return "\n".join(lines)


def _unavailable(databases: Databases, backend: str) -> str | None:
    """Why *backend*'s server cannot run here, or None. MariaDB's binaries may be missing outside CI."""
    if backend != "mariadb":
        return None
    try:
        databases.mariadb_server()
    except ServerError as error:
        if UNDER_CI:
            raise SystemExit(f"{backend}: could not start under CI: {error}") from None
        return str(error)
    return None


def _sizes(quick: bool, backend: str) -> dict[str, tuple]:
    """Each scenario's arguments after the database: full, quick, or quicker (MariaDB's part of --quick)."""
    if not quick:
        return {"stages": (2000,), "delivery": (delivery.FULL,), "reconcile": (100_000, 2000), "capture": (2000,),
                "idle": (100_000, 30.0, 1_000_000), "scaleout": (scaleout.FULL,)}
    if backend == "mariadb":  # its server's start-up comes on top, and CI's minute is shared
        return {"stages": (100,), "delivery": (delivery.QUICKER,), "reconcile": (200, 100), "capture": (100,),
                "idle": (200, 0.5, 1000), "scaleout": (scaleout.QUICK,)}
    return {"stages": (200,), "delivery": (delivery.QUICK,), "reconcile": (500, 200), "capture": (200,),
            "idle": (500, 1.0, 2000), "scaleout": (scaleout.QUICK,)}


def _skip(skipped: list[str], line: str) -> None:
    """Note what is not measured and why: now on stderr, and under the table."""
    skipped.append(line)
    print(line, file=sys.stderr, flush=True)


def _scenarios(databases: Databases, backend: str, only: set[str], quick: bool, skipped: list[str]) -> list[Figure]:
    sizes, figures = _sizes(quick, backend), []
    if "stages" in only:
        figures += stages.run(databases.fresh(backend), backend, *sizes["stages"])
    if "delivery" in only:
        figures += delivery.run(databases.fresh(backend), backend, *sizes["delivery"])
    if "reconcile" in only:
        figures += reconcile.run(databases.fresh(backend), backend, *sizes["reconcile"])
    if "capture" in only:
        figures += capture.run(databases.empty(backend), databases.empty(backend), backend, *sizes["capture"])
    if "idle" in only:
        figures += idle.run(databases.fresh(backend), backend, *sizes["idle"],
                            server_cpu=lambda: databases.server_cpu_seconds(backend))
    if "scaleout" in only:
        reason = scaleout.unsupported(backend)
        if reason is None:
            figures += scaleout.run(lambda: databases.fresh(backend), backend, *sizes["scaleout"])
        else:
            _skip(skipped, f"{backend}: scaleout not measured: {reason}")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every scenario, small: about two minutes")
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated: {', '.join(BACKENDS)}")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated: {', '.join(SCENARIOS)}")
    parser.add_argument("--pg-url", help="a PostgreSQL server to create databases on (default: a throwaway "
                                         "cluster on loopback, as the tests start)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    only = {s.strip() for s in args.only.split(",")}
    databases = Databases(args.pg_url)
    figures: list[Figure] = []
    measured, skipped = [], []
    began = time.monotonic()
    try:
        for backend in backends:
            reason = _unavailable(databases, backend)
            if reason is not None:
                _skip(skipped, f"{backend}: not measured: {reason}")
                continue
            figures += _scenarios(databases, backend, only, args.quick, skipped)
            measured.append(backend)
            print(f"{backend}: done after {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
        print(_machine(databases, measured))
        print()
        print(table(figures))
        for line in skipped:
            print(f"\n{line}")
    finally:
        databases.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
