"""A throwaway PostgreSQL cluster on loopback for the test session.

Uses Debian's server binaries. ``initdb`` refuses to run as root, so as root
the cluster belongs to the ``postgres`` user (or ``nobody``) and the commands
run through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from tests.scratch import free_port, scratch_directory, server_user


class ClusterError(RuntimeError):
    """The PostgreSQL test cluster could not be started."""


def find_bindir() -> Path:
    explicit = os.environ.get("APPTFLOW_TEST_PG_BINDIR")
    candidates = [explicit] if explicit else sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise ClusterError("no PostgreSQL server binaries (initdb) found; install Debian's postgresql package")


class Cluster:
    """initdb + pg_ctl start on a free loopback port; stop() removes everything."""

    def __init__(self):
        self.bindir = find_bindir()
        self.port = free_port()
        try:
            self.user = server_user("postgres", "nobody")
        except LookupError as error:
            raise ClusterError(str(error)) from None
        self.root = scratch_directory("apptflow-pg-", self.user)
        self.datadir = self.root / "data"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd=self.root)
        if check and result.returncode != 0:
            raise ClusterError(f"{args[0]} failed ({result.returncode}): {result.stderr or result.stdout}")
        return result

    def start(self) -> None:
        """Create the cluster and start it."""
        self._run("initdb", "-D", str(self.datadir), "-U", "apptflow", "-A", "trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")
        self.resume()

    def resume(self) -> None:
        """Start the (already created) server."""
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.root / "log"),
                  "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Stop the server (fast) and keep its data."""
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop", check=False)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def dump(self, database: str) -> str:
        """The whole database as pg_dump writes it: schemas, tables, triggers, functions and rows (without the
        random key newer pg_dumps put in their ``\\restrict`` lines)."""
        text = self._run("pg_dump", "-h", "127.0.0.1", "-p", str(self.port), "-U", "apptflow", database).stdout
        return "\n".join(line for line in text.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://apptflow@127.0.0.1:{self.port}/{database}"
