"""Log lines journald keeps well: one line per event, the ids it concerns as fields, text or JSON.

Records carry the workflow, appointment, delivery and change-event ids they
concern as ``extra`` fields. The text format appends them as
``workflow=3 delivery=12``; the JSON format (``[daemon] log_format =
"json"``) writes one object per line with them as keys, a traceback
included in the same line. Channels never put a credential in a message or
an error (tests/channels/test_secrets.py checks both formats).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

# The ids a record may carry, in the order they are shown.
FIELDS = ("workflow", "appointment", "delivery", "event")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in FIELDS if getattr(record, name, None) is not None}


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message workflow=3 delivery=12``."""

    def __init__(self):
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        line = super().formatMessage(record)
        fields = _fields(record)
        return line + "".join(f" {name}={value}" for name, value in fields.items()) if fields else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the ids, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def setup(level: str, log_format: str = "text") -> None:
    """Log to stderr (journald under systemd) at *level* in *log_format* ("text" or "json")."""
    root = logging.getLogger()
    if not root.handlers:  # as logging.basicConfig: a host that set up logging (a test runner) keeps its own
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
        root.addHandler(handler)
    set_level(level)


def set_level(level: str) -> None:
    """Change the level of every apptflow log line (and APScheduler's, see below) while running."""
    numeric = getattr(logging, level.upper())
    logging.getLogger().setLevel(numeric)
    # APScheduler says three lines per job it runs ("Running job", "executed", "Removed"): 3,000
    # lines for a morning's 1,000 reminders, each formatting the job. apptflow logs each firing
    # once itself, so APScheduler speaks only of problems unless asked for DEBUG.
    logging.getLogger("apscheduler").setLevel(max(numeric, logging.WARNING) if numeric > logging.DEBUG
                                              else numeric)
