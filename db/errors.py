"""Exceptions raised by the storage layer."""


class DatabaseError(Exception):
    """A database operation failed."""

    def __init__(self, message: str | None = None):
        super().__init__(message or self.__doc__)


class NotFound(DatabaseError):
    """No such row."""


class Conflict(DatabaseError):
    """The change conflicts with a row that already exists."""
