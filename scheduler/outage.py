"""Riding out a database that is away: wait for it quietly, keep what is known, say so once a second.

Every loop of the daemon meets the same outage at the same time. One
:class:`Outage` per daemon is told of each failure and of each success; it
logs one warning line a second at most while the database is away (no
traceback: an outage is not a bug) and one line when it answers again.
:meth:`Outage.persist` runs a step until the database answers, for a step
whose outcome is already known (a message sent, a firing due) and must be
written rather than lost or redone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from db.errors import describe, unavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Waits between attempts while the database is away: short at first (a lock held for a moment,
# a connection cut once), then once a second.
FIRST_WAIT, LONGEST_WAIT = 0.05, 1.0
# At most one warning line this often while the database stays away.
REPORT_EVERY = 1.0


class GaveUp(Exception):
    """The database did not answer before the step's deadline, or the daemon is stopping."""


class Outage:
    """What the daemon knows about the database being away, shared by its threads."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, report_every: float = REPORT_EVERY):
        self.clock = clock
        self.report_every = report_every
        self._lock = threading.Lock()
        self._since: float | None = None  # when the current outage was first seen
        self._reported = float("-inf")
        self._suppressed = 0

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, what: str, error: BaseException) -> None:
        """*what* (a thread's step) met an unavailable database: say so, once a second at most."""
        now = self.clock()
        with self._lock:
            if self._since is None:
                self._since = now
            if now - self._reported < self.report_every:
                self._suppressed += 1
                return
            self._reported, suppressed, self._suppressed = now, self._suppressed, 0
            elapsed = now - self._since
        also = f" ({suppressed} more failures in other steps)" if suppressed else ""
        logger.warning("database unavailable for %.1fs (%s): %s; waiting for it%s", elapsed, what,
                       describe(error), also)

    def answered(self) -> None:
        """A step reached the database: the outage, if there was one, is over."""
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            elapsed, self._since, self._suppressed = self.clock() - self._since, None, 0
            self._reported = float("-inf")
        logger.warning("database reachable again after %.1fs; carrying on", elapsed)

    def persist(self, what: str, step: Callable[[], T], *, deadline: float | None = None,
                stopping: threading.Event | None = None) -> T:
        """Run *step* until the database lets it finish; errors other than an unavailable
        database are raised at once. GaveUp when *deadline* (on the monotonic clock) passes or
        *stopping* is set first."""
        wait = FIRST_WAIT
        while True:
            try:
                result = step()
            except Exception as error:
                if not unavailable(error):
                    raise
                self.failed(what, error)
                left = (deadline - self.clock()) if deadline is not None else wait
                if left <= 0:
                    raise GaveUp(f"{what}: {describe(error)}") from None
                if stopping is not None:
                    if stopping.wait(min(wait, left)):
                        raise GaveUp(f"{what}: the daemon is stopping") from None
                else:
                    time.sleep(min(wait, left))
                wait = min(2 * wait, LONGEST_WAIT)
                continue
            self.answered()
            return result
