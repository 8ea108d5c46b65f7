"""Column types that behave the same on PostgreSQL, SQLite and MySQL/MariaDB.

How each server stores a time or a date is its server object's (:mod:`db.servers`); the
``with_variant`` types below are SQLAlchemy's own per-dialect registration, kept as such.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Date, DateTime, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

from db.servers import server_for

UTC = dt.timezone.utc


def to_utc(value: dt.datetime) -> dt.datetime:
    """Return *value* in UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_timestamp(text: str) -> dt.datetime:
    """Parse what a booking application may write into a SQLite time column."""
    return to_utc(dt.datetime.fromisoformat(text.strip()))


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC time: ``timestamptz`` on PostgreSQL, ISO 8601 text with offset on SQLite,
    ``DATETIME(6)`` holding UTC on MySQL/MariaDB (which has no time zone in a column; every apptflow
    session is in UTC).

    Values read back are always aware and in UTC, whatever offset the writer used.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        return dialect.type_descriptor(server_for(dialect).time_column())

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = parse_timestamp(value)
        return server_for(dialect).store_time(to_utc(value))

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            return parse_timestamp(value)
        return to_utc(value)


class CalendarDate(TypeDecorator):
    """A calendar date (a birthday): ``date`` on PostgreSQL and MySQL/MariaDB, text on SQLite.

    SQLite holds whatever the booking application wrote: an ISO date (or the
    date of an ISO timestamp) reads back as a :class:`datetime.date`, anything
    else as the text itself, so that one odd value never fails a whole query.
    """

    impl = Date
    cache_ok = True

    def load_dialect_impl(self, dialect):
        return dialect.type_descriptor(server_for(dialect).date_column())

    def process_bind_param(self, value, dialect):
        return None if value is None else server_for(dialect).store_date(value)

    def process_result_value(self, value, dialect):
        if not isinstance(value, str):
            return value
        text = value.strip()
        try:
            return dt.date.fromisoformat(text[:10]) if len(text) == 10 or text[10:11] in ("T", " ") else text
        except ValueError:
            return text


# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JSONDocument = JSON().with_variant(JSONB(), "postgresql")

# Text that is a key, indexed, or has a default: MySQL indexes and defaults no TEXT column. Compared byte for
# byte, as on PostgreSQL and SQLite, whatever the server's default collation (often case-insensitive).
ShortText = Text().with_variant(String(255, collation="utf8mb4_bin"), "mysql")
