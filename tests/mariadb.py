"""A throwaway MariaDB server on loopback for the test session.

Uses Debian's ``mariadb-server`` binaries. The server refuses to run as root
without being told to, so as root its data directory belongs to the ``mysql``
user (which the package creates) and it runs through ``runuser``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.scratch import free_port, scratch_directory, server_user


class ServerError(RuntimeError):
    """The MariaDB test server could not be started."""


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name) or next((str(p) for p in (Path("/usr/sbin") / name,) if p.exists()), None)
        if found:
            return found
    raise ServerError(f"no MariaDB server binaries ({names[0]}) found; install Debian's mariadb-server package")


class Server:
    """mariadb-install-db + mariadbd on a free loopback port; destroy() removes everything."""

    def __init__(self):
        self.install_db = _binary("mariadb-install-db", "mysql_install_db")
        self.mariadbd = _binary("mariadbd", "mysqld")
        self.port = free_port()
        try:
            self.user = server_user("mysql", "nobody")
        except LookupError as error:
            raise ServerError(str(error)) from None
        self.root = scratch_directory("apptflow-mariadb-", self.user)
        self.datadir = self.root / "data"
        self.process: subprocess.Popen | None = None

    def _command(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.user, "--", *args] if self.user else list(args)

    def start(self) -> None:
        """Create the data directory, start the server, and create the ``apptflow`` user."""
        result = subprocess.run(self._command(
            self.install_db, "--no-defaults", f"--datadir={self.datadir}", "--skip-test-db",
            "--auth-root-authentication-method=normal"), capture_output=True, text=True, cwd=self.root)
        if result.returncode != 0:
            raise ServerError(f"mariadb-install-db failed ({result.returncode}): {result.stderr or result.stdout}")
        self.resume()
        self.sql("CREATE USER apptflow@'%'", "GRANT ALL ON *.* TO apptflow@'%' WITH GRANT OPTION")

    def resume(self) -> None:
        """Start the (already created) server and wait until it answers."""
        # Durability off and small buffers: a test server, restarted often, on a shared machine.
        self.process = subprocess.Popen(self._command(
            self.mariadbd, "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.root / 'sock'}",
            f"--port={self.port}", "--bind-address=127.0.0.1", "--skip-name-resolve", "--skip-log-bin",
            f"--pid-file={self.root / 'pid'}", f"--log-error={self.root / 'log'}",
            "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0", "--innodb-buffer-pool-size=128M",
            "--max-connections=500", "--character-set-server=utf8mb4"),  # the default collation: case-insensitive
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"mariadbd exited ({self.process.returncode}): {self._log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise ServerError(f"mariadbd did not answer within 60 s: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return " | ".join((self.root / "log").read_text().splitlines()[-5:])
        except OSError:
            return "no log"

    def sql(self, *statements: str) -> None:
        """Run statements as the server's root user (through its socket, as the unprivileged owner)."""
        import pymysql

        conn = pymysql.connect(unix_socket=str(self.root / "sock"), user="root", autocommit=True)
        try:
            with conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            conn.close()

    def drop_database(self, name: str) -> None:
        """Drop a database, ending the sessions still on it first (DROP would wait for their locks)."""
        import pymysql

        conn = pymysql.connect(unix_socket=str(self.root / "sock"), user="root", autocommit=True)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
                               (name,))
                for (session,) in cursor.fetchall():
                    try:
                        cursor.execute(f"KILL {int(session)}")
                    except pymysql.err.OperationalError:
                        pass  # it ended by itself meanwhile
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop the server and keep its data."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "") -> str:
        return f"mysql+pymysql://apptflow@127.0.0.1:{self.port}/{database}"
