"""Column types that behave the same on PostgreSQL, SQLite and MySQL/MariaDB."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Date, DateTime, String, Text
from sqlalchemy.dialects.mysql import DATETIME as MYSQL_DATETIME
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

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
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        if dialect.name == "mysql":
            return dialect.type_descriptor(MYSQL_DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = parse_timestamp(value)
        value = to_utc(value)
        if dialect.name == "mysql":
            return value.replace(tzinfo=None)
        return value.isoformat() if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            return parse_timestamp(value)
        return to_utc(value)


class CalendarDate(TypeDecorator):
    """A calendar date (a birthday): ``date`` on PostgreSQL, text on SQLite.

    SQLite holds whatever the booking application wrote: an ISO date (or the
    date of an ISO timestamp) reads back as a :class:`datetime.date`, anything
    else as the text itself, so that one odd value never fails a whole query.
    """

    impl = Date
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Date())

    def process_bind_param(self, value, dialect):
        if value is None or dialect.name != "sqlite":
            return value
        return value.isoformat() if isinstance(value, dt.date) else str(value)

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
