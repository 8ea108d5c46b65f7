"""Exceptions raised by the storage layer, and telling an unreachable database from a wrong statement."""

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout


class DatabaseError(Exception):
    """A database operation failed."""

    def __init__(self, message: str | None = None):
        super().__init__(message or self.__doc__)


class NotFound(DatabaseError):
    """No such row."""


class Conflict(DatabaseError):
    """The change conflicts with a row that already exists."""


def unavailable(error: BaseException) -> bool:
    """Whether *error* says the database cannot be reached or used right now (down, restarting,
    connection cut, SQLite locked by another writer), as opposed to a statement being wrong:
    what is worth waiting out and trying again."""
    if isinstance(error, (OperationalError, InterfaceError, PoolTimeout)):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def describe(error: BaseException) -> str:
    """The driver's message in one line, without SQLAlchemy's statement dump or psycopg's hints."""
    cause = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return lines[0] if lines else type(cause).__name__
