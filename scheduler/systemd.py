"""Talking to systemd: readiness and status notifications, and a watchdog fed only by progress.

With ``WATCHDOG_USEC`` set (``WatchdogSec=`` in the unit), the daemon sends
``WATCHDOG=1`` every half interval, but only while each of its loops shows
progress: each loop says when it expects to come round again
(:meth:`Liveness.beat`), and a loop that has not come round by then, or
APScheduler's thread having died, stops the pings, so systemd restarts a
wedged daemon instead of leaving it running and silent.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

# Time a loop may run past what it announced before it counts as wedged, without a watchdog to
# say otherwise (the watchdog sets its own timeout; see Watchdog).
SLACK = 30.0


def notify(state: str) -> None:
    """Tell systemd (Type=notify) about our state, when run by it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(address)
            sock.sendall(state.encode())
        except OSError as error:
            logger.warning("could not notify systemd: %s", error)


def watchdog_interval() -> float | None:
    """Half the watchdog timeout systemd gave us, in seconds; None without one (or one meant for another pid)."""
    usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


class Liveness:
    """When each loop of the daemon last came round and when it expects to come round again."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, slack: float = SLACK):
        self.clock = clock
        self.slack = slack
        self._due: dict[str, float] = {}
        self._lock = threading.Lock()

    def beat(self, name: str, within: float) -> None:
        """*name* is making progress and will come round again within *within* seconds."""
        with self._lock:
            self._due[name] = self.clock() + within

    def forget(self, name: str) -> None:
        """*name* has ended on purpose (a worker the configuration no longer wants)."""
        with self._lock:
            self._due.pop(name, None)

    def stalled(self) -> list[str]:
        """The loops that have not come round when they said they would, with how late they are."""
        now = self.clock()
        with self._lock:
            return [f"{name} ({now - due:.0f}s past its time)"
                    for name, due in sorted(self._due.items()) if now > due + self.slack]


class Watchdog:
    """Sends ``WATCHDOG=1`` every *interval* (half systemd's timeout) while *healthy* finds nothing wrong.

    A loop counts as wedged once it is a whole watchdog timeout past the time it announced:
    systemd then restarts the daemon one more timeout later.
    """

    def __init__(self, interval: float, healthy: Callable[[], list[str]], stopping: threading.Event):
        self.interval = interval
        self.healthy = healthy
        self.stopping = stopping
        self._thread = threading.Thread(target=self._run, name="apptflow-watchdog", daemon=True)
        self._silent = False

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self.stopping.wait(self.interval):
            problems = self.healthy()
            if problems:
                if not self._silent:
                    logger.error("not feeding systemd's watchdog: %s; systemd restarts the daemon if this lasts",
                                 "; ".join(problems))
                self._silent = True
                continue
            if self._silent:
                logger.warning("making progress again: feeding systemd's watchdog")
                self._silent = False
            notify("WATCHDOG=1")
