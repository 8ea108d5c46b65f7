"""A fast HTTP receiver on loopback, in a process of its own: it records when each request arrived.

    python -m bench.receiver PORT

It answers every request ``200`` at once, keeping the connection alive, and
records ``(arrival time, path, body)``. ``GET /_arrivals`` returns what it
recorded as JSON, ``POST /_reset`` forgets it. asyncio on one core answers
several thousand requests a second, more than the daemon or the bare-requests
floor can send, so the receiver is not what a figure measures.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time

import requests

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class _Http(asyncio.Protocol):
    arrivals: list = []

    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data: bytes):
        now = time.time()
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            length = next((int(line.split(":", 1)[1]) for line in head[1:]
                           if line.lower().startswith("content-length:")), 0)
            if len(self.buffer) < end + 4 + length:
                return
            body, self.buffer = self.buffer[end + 4:end + 4 + length], self.buffer[end + 4 + length:]
            self._answer(head[0].split(" ")[:2], body, now)

    def _answer(self, request_line: list[str], body: bytes, now: float):
        method, path = request_line
        if path == "/_arrivals":
            payload = json.dumps(_Http.arrivals).encode()
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                                 + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        elif path == "/_reset":
            _Http.arrivals = []
            self.transport.write(_OK)
        else:
            _Http.arrivals.append((now, path, body.decode("utf-8", "replace")))
            self.transport.write(_OK)


async def _serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Http, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Receiver:
    """The receiver process, started and queried from the benchmark."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "bench.receiver", str(self.port)],
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready"
        self._http = requests.Session()

    def arrivals(self, path: str | None = None) -> list[tuple[float, str, str]]:
        """(time, path, body) of every request so far (to *path* only, if given)."""
        found = self._http.get(f"{self.url}/_arrivals", timeout=30).json()
        return [tuple(a) for a in found if path is None or a[1] == path]

    def wait_for(self, path: str, count: int, timeout: float) -> list[tuple[float, str, str]]:
        """The arrivals at *path* once there are *count* of them, or all there are after *timeout*."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.arrivals(path)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    def reset(self) -> None:
        self._http.post(f"{self.url}/_reset", timeout=30)

    def stop(self) -> None:
        self._http.close()
        self.process.terminate()
        self.process.wait(10)
        self.process.stdout.close()


if __name__ == "__main__":
    try:
        asyncio.run(_serve(int(sys.argv[1])))
    except KeyboardInterrupt:
        pass
