"""Which daemon leads which partition: consumes its change events, plans and runs its jobs.

Appointments and customers belong to partition ``id mod [daemon] partitions``
(docs/scale-out.md). On PostgreSQL and MySQL/MariaDB each partition has a
session-level lock, and every instance holds one more while it is alive, all on
a connection of its own: when a process dies, the database ends that session,
its locks go with it, and the others see it at their next step. At every step
each instance works out the same fair share from the instances alive (none
leads more than ⌈N/k⌉ of N partitions among k), gives back what is no longer
its share and takes what is. Every instance runs delivery workers. SQLite is
for one instance, which always leads its one partition.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence

from sqlalchemy.engine import Connection, Engine

from db import instances, leader
from db.errors import describe, unavailable
from db.leader import INSTANCE, PARTITION
from db.records import Instance
from db.servers import server_for
from scheduler.metrics import Metrics

logger = logging.getLogger(__name__)

# Candidates for the live set: instances not stopped with a heartbeat this recent (a killed one's row
# stays; its lock, gone with its session, tells it is dead).
CANDIDATE_WINDOW_SECONDS = 24 * 3600


class Share:
    """The partitions an instance leads, out of how many: what its consumer, planner and jobstore read."""

    def __init__(self, count: int = 1, held: Iterable[int] = (0,)):
        self.count = count
        self.held: frozenset[int] = frozenset(held)  # replaced whole, never changed in place: threads read it

    def mine(self, key: int) -> bool:
        """Whether the subject with this id belongs to a partition this instance leads."""
        return key % self.count in self.held

    @property
    def everything(self) -> bool:
        """Whether this instance leads every partition (no filter needed)."""
        return len(self.held) == self.count


def assign(count: int, alive: Sequence[str], holding: Mapping[str, Iterable[int]] | None = None
           ) -> dict[str, set[int]]:
    """The share of each instance alive: the same on every instance that sees the same ones alive.

    Every instance gets ⌊count/k⌋ or ⌈count/k⌉ partitions (the larger shares to those *holding* most
    now). Each keeps what it holds within its share, so an instance joining or leaving moves only what
    must move; every other partition goes to the instance that ranks first for it (a hash of both)
    among those with room left.
    """
    order = sorted(alive)
    if not order:
        return {}
    holding = {i: sorted(p for p in (holding or {}).get(i, ()) if 0 <= p < count) for i in order}
    fewer, extra = divmod(count, len(order))
    by_size = sorted(order, key=lambda i: (-len(holding[i]), i))
    room = {instance: fewer + (1 if n < extra else 0) for n, instance in enumerate(by_size)}
    shares: dict[str, set[int]] = {instance: set() for instance in order}
    placed: set[int] = set()
    for instance in order:
        for partition in holding[instance]:
            if partition not in placed and len(shares[instance]) < room[instance]:
                shares[instance].add(partition)
                placed.add(partition)
    for partition in range(count):
        if partition in placed:
            continue
        ranked = sorted(order, key=lambda i: (-zlib.crc32(f"{partition}:{i}".encode()), i))
        owner = next(i for i in ranked if len(shares[i]) < room[i])
        shares[owner].add(partition)
    return shares


class Disagreement(Exception):
    """Another instance runs with another number of partitions."""


class Leadership(Share):
    """Take this instance's share of the partitions, keep it, give it back."""

    def __init__(self, engine: Engine, metrics: Metrics | None = None, *, instance_id: str = "",
                 partitions: int = 1):
        self.shared = server_for(engine).shared
        super().__init__(partitions, range(partitions) if not self.shared else ())
        self.engine = engine
        self.metrics = metrics or Metrics()
        self.instance_id = instance_id
        self._conn: Connection | None = None
        self._registered = False  # this instance's own lock is held on _conn
        self._waiting = False  # said that a dead session of ours still holds it
        self._recorded: frozenset[int] | None = None  # the partitions the instances table says it leads
        self._ignored: set[str] = set()  # instances of another partition count, said once
        for partition in self.held:
            self.metrics.leading(partition, True)

    @property
    def leading(self) -> bool:
        """Whether this instance leads some partition."""
        return bool(self.held)

    def join(self, now: dt.datetime) -> None:
        """Register this instance alive (its own lock, its row), or refuse in one line when instances alive
        run with another number of partitions."""
        if not self.shared:
            with self.engine.begin() as record:
                instances.leads(record, self.instance_id, self.held)
            return
        try:
            candidates = self._candidates(now)
            self._connection()
            everyone = self._everyone(candidates)
        except Exception as error:  # noqa: BLE001 - checked at every step as well (see _alive)
            if not unavailable(error):
                raise
            logger.warning("cannot compare partitions with the other instances now (%s); an instance with "
                           "another count is left out of the sharing when it is seen", describe(error))
            self._drop(lambda _: None)
            return
        others = [i for i in everyone if i.id != self.instance_id and i.partitions not in (None, self.count)]
        if others:
            first = others[0]
            raise Disagreement(
                f"[daemon] partitions = {self.count} here, but {first.partitions} on the instance running on "
                f"{first.hostname} (pid {first.pid}): every instance must run with the same value")

    def step(self, now: dt.datetime, gained: Callable[[set[int]], None], lost: Callable[[set[int]], None]) -> bool:
        """Confirm what this instance holds, give back what is no longer its share, take what is.

        *lost* is called before a partition's lock goes (it must stop scheduling it first), *gained* after
        one is taken. Returns whether this instance holds all its share (else: step again soon). A failure
        on the locks' connection ends its session (the locks are gone with it) and is raised; a failure
        to read the instances keeps what is held and is raised."""
        if not self.shared:
            return True
        with self._on_lock_connection(lost):
            if not self._confirm(lost):
                return False
        candidates = self._candidates(now)  # a failure here leaves the locks as they are
        with self._on_lock_connection(lost):
            alive = self._alive(candidates)
            holding = {i.id: instances.led(i) for i in alive} | {self.instance_id: self.held}
            share = assign(self.count, [i.id for i in alive], holding).get(self.instance_id, set())
            if self.held - share:
                self._give_back(self.held - share, lost)
            taken = {p for p in sorted(share - self.held) if leader.try_lock(self._conn, PARTITION, p)}
        if taken:
            self.held = self.held | taken
            for partition in taken:
                self.metrics.leading(partition, True)
            logger.info("this instance leads partitions %s of %d: it consumes their change events and runs "
                        "their jobs", _listed(taken), self.count)
            gained(taken)
        if self.held != self._recorded:
            with self.engine.begin() as record:
                instances.leads(record, self.instance_id, self.held)
            self._recorded = self.held
        return share <= self.held

    def confirm(self, lost: Callable[[set[int]], None]) -> bool:
        """Whether this instance still holds its locks (a round trip on their connection; False once they
        are gone, when it has stopped scheduling them)."""
        if not self.shared:
            return True
        try:
            with self._on_lock_connection(lost):
                return self._confirm(lost)
        except Exception:  # noqa: BLE001 - said, and the session dropped, by _on_lock_connection
            return False

    @contextlib.contextmanager
    def _on_lock_connection(self, lost: Callable[[set[int]], None]):
        """Statements on the locks' connection: any failure means its session, and the locks, are gone."""
        try:
            yield
        except Exception as error:
            if self.held:
                logger.warning("lost the leader lock's connection (%s); this instance stops scheduling "
                               "partitions %s until it leads again", describe(error), _listed(self.held))
            self._drop(lost)
            raise

    def _confirm(self, lost: Callable[[set[int]], None]) -> bool:
        """Take this instance's own lock if it has not, and check that it still holds every lock it should."""
        me = instances.lock_number(self.instance_id)
        conn = self._connection()
        if not self._registered:
            self._registered = leader.try_lock(conn, INSTANCE, me)
            if not self._registered:  # a session of ours the server has not ended yet (a dead peer)
                if not self._waiting:
                    logger.warning("this instance's previous database session still holds its lock; it "
                                   "leads again once the server has ended that session")
                self._waiting = True
                return False
            self._waiting = False
        still = leader.held(conn, PARTITION, self.held)
        alive = leader.held(conn, INSTANCE, [me])
        if self.held - still or not alive:
            logger.warning("partitions %s are no longer held by this instance; it stops scheduling them",
                           _listed(self.held - still) or _listed(self.held))
            self._give_back(self.held - still if alive else self.held, lost, unlock=False)
            if not alive:
                self._drop(lost)
                return False
        return True

    def release(self, lost: Callable[[set[int]], None], *, leave: bool = True) -> None:
        """Step down from every partition (and let other instances lead them); with *leave*, end this
        instance's session too (it stops: it is no longer counted alive)."""
        if self.shared and self.held:
            try:
                self._give_back(self.held, lost)
            except Exception:  # noqa: BLE001 - ending the session releases the locks anyway
                leave = True
        if leave and self._conn is not None:
            self._drop(lost)

    def _give_back(self, partitions: set[int], lost: Callable[[set[int]], None], *, unlock: bool = True) -> None:
        if not partitions:
            return
        self.held = self.held - partitions
        lost(set(partitions))
        for partition in sorted(partitions):
            self.metrics.leading(partition, False)
            if unlock and self._conn is not None:
                leader.unlock(self._conn, PARTITION, partition)
        if unlock:
            logger.info("this instance gives back partitions %s (its share is now %s)", _listed(partitions),
                        _listed(self.held) or "none")

    def _candidates(self, now: dt.datetime) -> list[Instance]:
        """The instances registered and not stopped (alive or not: their locks tell)."""
        with self.engine.connect() as read:
            return instances.running(read, now - dt.timedelta(seconds=CANDIDATE_WINDOW_SECONDS))

    def _everyone(self, candidates: list[Instance]) -> list[Instance]:
        """The instances alive among the *candidates*: those holding their own lock."""
        numbers = {instances.lock_number(i.id): i for i in candidates}
        return [numbers[n] for n in sorted(leader.taken(self._conn, INSTANCE, numbers))]

    def _alive(self, candidates: list[Instance]) -> list[Instance]:
        """The instances alive of the same partition count (another is said once, and left out)."""
        same = []
        for instance in self._everyone(candidates):
            if instance.partitions in (None, self.count):
                same.append(instance)
            elif instance.id not in self._ignored:
                self._ignored.add(instance.id)
                logger.error("the instance on %s (pid %d) runs with [daemon] partitions = %s, this one with %d: "
                             "it is left out of the sharing", instance.hostname, instance.pid, instance.partitions,
                             self.count)
        return same

    def _connection(self) -> Connection:
        """The connection holding this instance's locks; its own lock is taken on it (see step) unless a
        dead session of ours still holds it."""
        if self._conn is None:
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                self._registered = leader.try_lock(self._conn, INSTANCE, instances.lock_number(self.instance_id))
            except Exception:
                self._drop(lambda _: None)
                raise
        return self._conn

    def _drop(self, lost: Callable[[set[int]], None]) -> None:
        if self.held:
            held, self.held = self.held, frozenset()
            lost(set(held))
            for partition in held:
                self.metrics.leading(partition, False)
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            finally:
                self._conn, self._registered = None, False


def _listed(partitions: Iterable[int]) -> str:
    return ", ".join(str(p) for p in sorted(partitions))
