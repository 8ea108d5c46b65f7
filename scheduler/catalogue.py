"""The daemon's view of the workflows: reloaded when they change, invalid rows marked and skipped."""

from __future__ import annotations

import functools
import logging
import threading

from sqlalchemy.engine import Connection

from db import workflows as store
from engine.document import workflow_from_row
from engine.errors import InvalidWorkflow
from engine.workflow import Workflow

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=512)
def parsed(row) -> Workflow:
    """The workflow a row holds, parsed and validated once per distinct row.

    Rows are frozen values of every column (actions included), so a row
    edited in any way is a new key: callers read rows fresh from the
    database and skip only the parsing, never the reading.
    """
    return workflow_from_row(row)


class Catalogue:
    """Valid workflows by id, loaded from the database on demand.

    Edits arrive as change events (SQL or CLI alike): the consumer calls
    :meth:`invalidate` and the next :meth:`workflows` reloads. An invalid row
    gets its ``error`` column set (and cleared once fixed) and is left out.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._workflows: dict[int, Workflow] | None = None

    def invalidate(self) -> None:
        with self._lock:
            self._workflows = None

    def workflows(self, conn: Connection) -> list[Workflow]:
        """Every valid workflow (enabled or not), reloaded through *conn* after a change."""
        with self._lock:
            if self._workflows is None:
                self._workflows = self._load(conn)
            return list(self._workflows.values())

    def _load(self, conn: Connection) -> dict[int, Workflow]:
        valid = {}
        for row in store.list_workflows(conn):
            try:
                workflow = parsed(row)
                error = None
            except InvalidWorkflow as invalid:
                workflow, error = None, str(invalid)
            if error != row.error:
                store.set_error(conn, row.id, error)
                if error:
                    logger.warning("workflow %s (%s) is invalid and skipped: %s", row.id, row.name,
                                   error, extra={"workflow": row.id})
            if workflow is not None:
                valid[row.id] = workflow
        logger.debug("loaded %d valid workflows", len(valid))
        return valid
