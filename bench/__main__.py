"""``python -m bench [--quick]``: every scenario on SQLite and PostgreSQL, one table of figures and floors.

Each figure stands beside its floor, the bare library doing the same work in
the same run on the same machine, and the ratio between them; the aims are
the project's. ``--quick`` runs every scenario small, in about a minute, to
show that the suite works; its numbers mean little.
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

from bench import capture, delivery, idle, reconcile, stages
from bench.harness import Databases, Figure

SCENARIOS = ("stages", "delivery", "reconcile", "idle", "capture")


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every scenario, small: about a minute")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated: {', '.join(SCENARIOS)}")
    parser.add_argument("--pg-url", help="a PostgreSQL server to create databases on (default: a throwaway "
                                         "cluster on loopback, as the tests start)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    only = {s.strip() for s in args.only.split(",")}
    databases = Databases(args.pg_url)
    figures: list[Figure] = []
    began = time.monotonic()
    try:
        for backend in backends:
            if "stages" in only:
                figures += stages.run(databases.fresh(backend), backend, 200 if args.quick else 2000)
            if "delivery" in only:
                sizes = delivery.QUICK if args.quick else delivery.FULL
                figures += delivery.run(databases.fresh(backend), backend, sizes)
            if "reconcile" in only:
                figures += reconcile.run(databases.fresh(backend), backend, *((500, 200) if args.quick
                                                                              else (100_000, 2000)))
            if "capture" in only:
                figures += capture.run(databases.empty(backend), databases.empty(backend), backend,
                                       200 if args.quick else 2000)
            if "idle" in only:
                figures += idle.run(databases.fresh(backend), backend, *((500, 1.0) if args.quick
                                                                         else (100_000, 30.0)))
            print(f"{backend}: done after {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
        print(_machine(databases, backends))
        print()
        print(table(figures))
    finally:
        databases.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
