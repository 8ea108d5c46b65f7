"""apptflow's own tables under a name prefix on MySQL/MariaDB, where a schema of their own is rarely possible.

A WordPress host grants one database; apptflow's tables go into it beside the
application's, each named with a prefix (``apptflow_`` by default, as WordPress
names its own ``wp_``). Every query of ``db/`` names the tables through
:data:`db.tables.metadata`, so the prefix is added in one place: the dialect's
identifier preparer, which renders every table name in a statement, a DDL or a
reflection (``DESCRIBE``). The logical names stay the same everywhere else.
With a mapping, the booking tables' names are prefixed too: they are the
mapping's views, which live beside apptflow's tables, over the application's own.
"""

from __future__ import annotations

from db.tables import BOOKING_TABLES, metadata

# The version table is Alembic's, and APScheduler's job table is declared in db.tables too.
OWN_TABLES = frozenset(t.name for t in metadata.sorted_tables if t not in BOOKING_TABLES) | {"alembic_version"}
MAPPED_TABLES = frozenset(t.name for t in BOOKING_TABLES)


def prefixed_names(mapped: bool) -> frozenset[str]:
    """The logical table names that get the prefix: apptflow's own, and the booking views of a mapping."""
    return OWN_TABLES | MAPPED_TABLES if mapped else OWN_TABLES


def prefixing_preparer(base: type, prefix: str, mapped: bool) -> type:
    """A subclass of the dialect's identifier preparer *base* that writes apptflow's table names with *prefix*.

    A statement names a table through ``quote`` (the compiler's tables and the
    columns they qualify, and every DDL), reflection through
    ``_quote_free_identifiers(database, table)``: the prefix is added there, to
    the table's name only. Database and schema names are never prefixed, nor is
    anything quoted otherwise. No column, index or constraint of apptflow's is
    named like one of its tables (tests/test_mysql.py checks this).
    """
    names = prefixed_names(mapped)

    def named(ident):
        return prefix + ident if ident in names else ident

    class PrefixingPreparer(base):
        def quote(self, ident):
            return super().quote(named(ident))

        def quote_schema(self, schema):
            return super().quote(schema)  # a database's name, not a table's

        def _quote_free_identifiers(self, *ids):
            *qualifiers, table = ids
            return super()._quote_free_identifiers(*qualifiers, named(table) if table else table)

    return PrefixingPreparer
