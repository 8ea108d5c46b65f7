"""Storage: tables, connections, schema install and migration, change capture, and every query."""

from db.errors import DatabaseError, NotFound, Conflict

__all__ = ["DatabaseError", "NotFound", "Conflict"]
