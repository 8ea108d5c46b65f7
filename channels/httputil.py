"""Helpers shared by the channels that speak HTTP through ``requests``."""

from __future__ import annotations

import logging
import re
from http.cookiejar import DefaultCookiePolicy
from urllib.parse import urlsplit

import requests

# Telegram puts the bot token in the request path, and urllib3 logs paths at DEBUG.
_BOT_PATH = re.compile(r"/bot[^/\s'\"]+")
_URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.connection")


# Requests no retry can make valid: a malformed URL or header.
REFUSED_REQUESTS = (
    requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
)


def new_session() -> requests.Session:
    """A session that keeps no cookies: one receiver's Set-Cookie must not ride along to the next request."""
    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return session


def is_transient_status(status: int) -> bool:
    """Whether an HTTP status means "try again later": 408, 425, 429 and every 5xx."""
    return status in (408, 425, 429) or status >= 500


def failure_reason(error: BaseException) -> str:
    """What went wrong in a requests exception, without the URL (it may carry a token)."""
    inner = error.args[0] if error.args and isinstance(error.args[0], BaseException) else error
    # urllib3's MaxRetryError names the whole URL; its ``reason`` names only host and port.
    inner = getattr(inner, "reason", None) or inner
    return f"{type(error).__name__}: {inner}"


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: enough to say where, never a path or query secret."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


class _RedactBotPaths(logging.Filter):
    """Rewrite ``/bot<token>`` in a record to ``/bot***`` before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/bot" in message:
            record.msg, record.args = _BOT_PATH.sub("/bot***", message), ()
        return True


_redactor = _RedactBotPaths()


def redact_bot_paths_in_urllib3_logs() -> None:
    """Install the redacting filter on urllib3's loggers (idempotent).

    Logger filters do not apply to child loggers, hence one per urllib3 module
    that logs a URL.
    """
    for name in _URLLIB3_LOGGERS:
        logger = logging.getLogger(name)
        if _redactor not in logger.filters:
            logger.addFilter(_redactor)
