"""Which daemon leads: consumes change events and runs the time-offset jobs.

On PostgreSQL and MySQL/MariaDB several ``apptflow run`` instances may share one
database. The leader holds a session-level lock on a connection of its own; when
it dies, the database ends that session, the lock is released, and another
instance takes over within a heartbeat. Every instance runs delivery workers.
SQLite is for one instance, which always leads.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Connection, Engine

from db import leader
from db.errors import describe
from db.servers import server_for
from scheduler.metrics import Metrics

logger = logging.getLogger(__name__)


class Leadership:
    """Try to lead, know whether we still do, step down."""

    def __init__(self, engine: Engine, metrics: Metrics | None = None):
        self.engine = engine
        self.metrics = metrics or Metrics()
        self.shared = server_for(engine).shared
        self._conn: Connection | None = None

    @property
    def leading(self) -> bool:
        return not self.shared or self._conn is not None

    def acquire(self) -> bool:
        """Lead if no other instance does; True if this instance leads now."""
        if self.leading:
            self.metrics.leading(True)
            return True
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            if leader.try_lead(conn):
                self._conn = conn
                self.metrics.leading(True)
                logger.info("this instance leads: it consumes change events and runs time-offset jobs")
                return True
        except Exception:
            conn.close()
            raise
        conn.close()
        return False

    def confirm(self) -> bool:
        """Whether this instance still leads (its lock session is alive)."""
        if not self.shared:
            return True
        if self._conn is None:
            return False
        try:
            if leader.still_held(self._conn):
                return True
            logger.warning("the leader lock is no longer held by this instance; it stops scheduling")
        except Exception as error:  # noqa: BLE001 - any failure means the session, and the lock, are gone
            logger.warning("lost the leader lock's connection (%s); this instance stops scheduling until "
                           "it leads again", describe(error))
        self._drop()
        return False

    def release(self) -> None:
        """Step down (and let another instance lead)."""
        if self._conn is None:
            return
        try:
            leader.resign(self._conn)
        except Exception:  # noqa: BLE001 - closing the session releases the lock anyway
            pass
        self._drop()

    def _drop(self) -> None:
        self.metrics.leading(False)
        try:
            self._conn.invalidate()
            self._conn.close()
        finally:
            self._conn = None
