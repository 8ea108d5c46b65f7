"""The retry policy, in one place: exponential backoff with jitter, then give up."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """First retry after ``base``, doubling up to ``cap``; ``attempts`` tries in all.

    Each delay is spread by ±``jitter`` (a fraction) so that a burst of
    failures does not retry in lockstep.
    """

    base: dt.timedelta = dt.timedelta(seconds=30)
    cap: dt.timedelta = dt.timedelta(hours=1)
    attempts: int = 8
    jitter: float = 0.2

    def delay(self, attempt: int, rng: random.Random) -> dt.timedelta:
        """How long to wait after failed attempt number *attempt* (1-based)."""
        plain = min(self.cap, self.base * (2 ** (attempt - 1)))
        return plain * (1 + rng.uniform(-self.jitter, self.jitter))

    def next_attempt(self, attempt: int, now: dt.datetime, rng: random.Random) -> dt.datetime | None:
        """When to try again after failed attempt *attempt*, or None when it was the last."""
        if attempt >= self.attempts:
            return None
        return now + self.delay(attempt, rng)


DEFAULT_POLICY = RetryPolicy()
