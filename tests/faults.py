"""Faults placed exactly: a TCP proxy in front of PostgreSQL or MariaDB that cuts when a statement passes,
and a writer that holds SQLite's lock.

The proxy reads the client's side of the protocol just enough to see each
statement's text (PostgreSQL: simple queries, Parse messages, and the Bind of
a statement prepared earlier; MySQL/MariaDB: COM_QUERY packets, which PyMySQL
sends for every statement), so a test can cut the database away at the
moment the daemon sends a given statement, before the server sees it; new
connections are then refused until the outage ends. A cut can also be made
by hand, from a receiver's handler, between a send and its record.

The proxy can also become a black hole, as a partition that drops packets
does: nothing is forwarded either way and nothing is closed, until it heals;
then what was held goes through, except on the connections whose client gave
up meanwhile, which are closed (their data dropped) as the server would find
them on the first packet after the partition.
"""

from __future__ import annotations

import re
import socket
import sqlite3
import struct
import threading
import time
from dataclasses import dataclass, field

# Codes of the requests that come before the startup message and get a one-byte answer.
_PRE_STARTUP = {80877103, 80877104}  # SSLRequest, GSSENCRequest
_COM_QUERY = 0x03


@dataclass(kw_only=True)
class Trigger:
    """Cut when a statement matching *pattern* is about to pass."""

    pattern: re.Pattern
    down_for: float
    everything: bool  # every connection, or only the one that sent the statement
    fired: threading.Event = field(default_factory=threading.Event)


class _Link:
    """One client connection and its connection to the server."""

    def __init__(self, proxy: "CuttableProxy", client: socket.socket, server: socket.socket):
        self.proxy, self.client, self.server = proxy, client, server
        self.mysql = proxy.protocol == "mysql"
        self.prepared: dict[bytes, bytes] = {}
        self.closed = False

    def start(self) -> None:
        threading.Thread(target=self._upstream, daemon=True).start()
        threading.Thread(target=self._downstream, daemon=True).start()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sock in (self.client, self.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def client_gone(self) -> bool:
        """Whether the client has closed its end (what it sent last is then dropped, not forwarded)."""
        try:
            return self.client.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _passes(self, chunk: bytes) -> bool:
        """Wait while the proxy is a black hole (an end of stream waits too); whether to forward *chunk*."""
        self.proxy.flowing.wait()
        return bool(chunk) and not self.closed

    def _downstream(self) -> None:
        try:
            while self._passes(chunk := self.server.recv(65536)):
                self.client.sendall(chunk)
        except OSError:
            pass
        self.close()

    def _upstream(self) -> None:
        buffer, typed = b"", False
        try:
            while self._passes(chunk := self.client.recv(65536)):
                buffer += chunk
                while True:
                    next_message = self._next_packet if self.mysql else self._next_message
                    message, buffer, typed = next_message(buffer, typed)
                    if message is None:
                        break
                    if typed and self.proxy.should_cut(self, self._statement(message)):
                        return
                    self.server.sendall(message)
        except OSError:
            pass
        finally:
            self.close()

    @staticmethod
    def _next_message(buffer: bytes, typed: bool) -> tuple[bytes | None, bytes, bool]:
        if not typed:
            if len(buffer) < 8:
                return None, buffer, typed
            length, code = struct.unpack("!ii", buffer[:8])
            if len(buffer) < length:
                return None, buffer, typed
            return buffer[:length], buffer[length:], code not in _PRE_STARTUP
        if len(buffer) < 5:
            return None, buffer, typed
        length = struct.unpack("!i", buffer[1:5])[0] + 1
        if len(buffer) < length:
            return None, buffer, typed
        return buffer[:length], buffer[length:], typed

    @staticmethod
    def _next_packet(buffer: bytes, typed: bool) -> tuple[bytes | None, bytes, bool]:
        """MySQL's packets: a 3-byte little-endian length and a sequence number; the client's first is its
        handshake answer, every one after it a command."""
        if len(buffer) < 4:
            return None, buffer, typed
        length = int.from_bytes(buffer[:3], "little") + 4
        if len(buffer) < length:
            return None, buffer, typed
        return buffer[:length], buffer[length:], True

    def _statement(self, message: bytes) -> bytes:
        if self.mysql:
            # sequence 0 starts a command; the handshake answer is sequence 1
            return message[5:] if message[3] == 0 and message[4] == _COM_QUERY else b""
        kind, payload = message[:1], message[5:]
        if kind == b"Q":
            return payload
        if kind == b"P":
            name, query = payload.split(b"\0")[:2]
            if name:
                self.prepared[name] = query
            return query
        if kind == b"B":
            statement = payload.split(b"\0")[1]
            return self.prepared.get(statement, b"")
        return b""


class CuttableProxy:
    """A loopback TCP proxy to a PostgreSQL (or, with *protocol* "mysql", a MariaDB) server that a test cuts
    and restores."""

    def __init__(self, target_port: int, protocol: str = "postgresql"):
        self.target_port, self.protocol = target_port, protocol
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._trigger: Trigger | None = None
        self.cuts: list[str] = []  # what each cut was, in order
        self.flowing = threading.Event()  # cleared: a black hole (see black_hole)
        self.flowing.set()
        self._running = True
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, database: str) -> str:
        if self.protocol == "mysql":
            return f"mysql+pymysql://apptflow@127.0.0.1:{self.port}/{database}"
        return f"postgresql+psycopg://apptflow@127.0.0.1:{self.port}/{database}?sslmode=disable&gssencmode=disable"

    def arm(self, pattern: bytes, *, down_for: float, everything: bool = True) -> Trigger:
        """Cut the next time a statement matching *pattern* (a regex) is sent."""
        trigger = Trigger(pattern=re.compile(pattern, re.DOTALL), down_for=down_for, everything=everything)
        with self._lock:
            self._trigger = trigger
        return trigger

    def cut(self, down_for: float, reason: str = "by hand") -> None:
        """Drop every connection now and refuse new ones for *down_for* seconds."""
        with self._lock:
            self._cut(None, down_for, reason)

    def restore(self) -> None:
        """End a cut's outage now: new connections are accepted again."""
        with self._lock:
            self._down_until = 0.0

    def black_hole(self) -> None:
        """Stop forwarding, both ways, on every connection and on new ones, closing nothing (see heal)."""
        with self._lock:
            self.cuts.append("black hole")
            self.flowing.clear()

    def heal(self) -> None:
        """Forward again; a connection its client gave up during the black hole is closed, its data dropped."""
        with self._lock:
            for link in [link for link in self._links if link.client_gone()]:
                link.close()
                self._links.discard(link)
            self.flowing.set()

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    def should_cut(self, link: _Link, statement: bytes) -> bool:
        with self._lock:
            trigger = self._trigger
            if trigger is None or not statement or not trigger.pattern.search(statement):
                return False
            self._trigger = None
            self._cut(None if trigger.everything else link, trigger.down_for,
                      statement.decode(errors="replace")[:120])
            trigger.fired.set()
            return True

    def _cut(self, only: _Link | None, down_for: float, reason: str) -> None:
        self._down_until = time.monotonic() + down_for
        self.cuts.append(reason)
        for link in ([only] if only else list(self._links)):
            link.close()
            self._links.discard(link)

    def _accept(self) -> None:
        while self._running:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.down:
                client.close()  # the database is away: refused
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            link = _Link(self, client, server)
            with self._lock:
                self._links.add(link)
            link.start()

    def close(self) -> None:
        self._running = False
        self.flowing.set()  # no forwarding thread left waiting
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close alone does not)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            for link in list(self._links):
                link.close()
            self._links.clear()
        self._thread.join(5)


class SqliteLockHolder:
    """Another writer on a SQLite database: takes its write lock and holds it for a while."""

    def __init__(self, path: str):
        self.path = path
        self.held = threading.Event()
        self.released = threading.Event()
        self.threads: list[threading.Thread] = []

    def hold(self, seconds: float) -> None:
        """Take the write lock (waiting for the current writer to finish) and hold it *seconds* (or until
        release), in a thread."""
        def run():
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                self.held.set()
                self.released.wait(seconds)
                conn.execute("COMMIT")
            finally:
                conn.close()
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def release(self) -> None:
        """Let go of the lock now."""
        self.released.set()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(60)
