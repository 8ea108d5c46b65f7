"""Attachments: fetched from an http(s) URL or read from a file under one configured directory.

Every attachment of a message is loaded before anything is sent, so a missing
file fails the delivery before a half-sent message exists.

An attachment URL may come from a template fed by customer data, and what it
fetches is mailed out: downloads go through the SSRF guard
(:mod:`channels.netguard`), so ``http://169.254.169.254/`` or
``http://localhost:8080/admin`` is refused unless private addresses are
allowed (tests on loopback, an intranet file server).
"""

from __future__ import annotations

import logging
import mimetypes
import os
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import requests

from channels import httputil
from channels.base import PermanentSendError, TransientSendError
from channels.httputil import REFUSED_REQUESTS, failure_reason, is_transient_status, origin
from channels.netguard import BlockedAddress, GuardedAdapter

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 10_000_000
_CHUNK = 64 * 1024
# A server that trickles one byte per read-timeout would hold a worker for ever;
# a whole download gets this many read-timeouts at most.
_TOTAL_TIMEOUT_FACTOR = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    """A loaded attachment: what a transport puts in the message."""

    filename: str
    content_type: str
    data: bytes

    def __iter__(self):
        # Lets callers unpack ``filename, content_type, data = load(...)``.
        return iter((self.filename, self.content_type, self.data))


def guarded_session(*, allow_private_addresses: bool = False) -> requests.Session:
    """A session for downloads whose every connection, redirects included, passes the SSRF guard."""
    session = httputil.new_session()
    session.trust_env = False  # no proxy: it would resolve the name again, past the guard
    adapter = GuardedAdapter(allow_private=allow_private_addresses)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def load(
    source: str,
    *,
    directory: str | os.PathLike | None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = 30.0,
    session: requests.Session | None = None,
    allow_private_addresses: bool = False,
) -> Attachment:
    """Load one attachment from an http(s) URL or a path inside ``directory``.

    Raises PermanentSendError for a source that can never be loaded (too
    large, outside the directory, missing, 404, a private address) and
    TransientSendError for one that may load later (timeout, connection
    error, 5xx). ``session``, if given, comes from :func:`guarded_session`
    with the same ``allow_private_addresses``.
    """
    try:
        scheme = urlsplit(source).scheme.lower()
    except ValueError:
        raise PermanentSendError("attachment: a malformed URL") from None
    if scheme in ("http", "https"):
        return fetch(source, max_bytes=max_bytes, timeout=timeout, session=session,
                     allow_private_addresses=allow_private_addresses)
    if scheme and len(scheme) > 1:  # "c:" is not a scheme, "file:" or "ftp:" is
        raise PermanentSendError(f"attachment: unsupported URL scheme {scheme!r}")
    return read(source, directory=directory, max_bytes=max_bytes)


def load_all(sources, **options) -> list[Attachment]:
    """Load every attachment of a message (see :func:`load`)."""
    return [load(source, **options) for source in sources]


def fetch(
    url: str, *, max_bytes: int, timeout: float, session: requests.Session | None = None,
    allow_private_addresses: bool = False,
) -> Attachment:
    """Download ``url`` through the SSRF guard, refusing more than ``max_bytes``."""
    if session is None:
        with guarded_session(allow_private_addresses=allow_private_addresses) as own:
            return fetch(url, max_bytes=max_bytes, timeout=timeout, session=own,
                         allow_private_addresses=allow_private_addresses)
    _check_guarded(session, url, allow_private_addresses)
    where = origin(url)
    try:
        with session.get(url, stream=True, timeout=timeout) as response:
            _check_status(response.status_code, where)
            data = _read_limited(response, max_bytes, timeout * _TOTAL_TIMEOUT_FACTOR, where)
            content_type = response.headers.get("Content-Type", "")
    except BlockedAddress as error:
        raise BlockedAddress(f"attachment from {where}: {error}") from None
    except REFUSED_REQUESTS as error:  # its message quotes the URL
        raise PermanentSendError(f"attachment from {where}: {type(error).__name__}") from None
    except requests.RequestException as error:
        # ``from None``: the requests exception names the whole URL, which may be signed.
        raise TransientSendError(f"attachment from {where}: {failure_reason(error)}") from None
    filename = _url_filename(url)
    return Attachment(filename=filename, content_type=_content_type(content_type, filename), data=data)


def _check_guarded(session: requests.Session, url: str, allow_private_addresses: bool) -> None:
    """Refuse a session that would skip the guard, or apply another rule than the one asked for."""
    adapter = session.get_adapter(url)
    if not isinstance(adapter, GuardedAdapter) or adapter.allow_private != allow_private_addresses:
        raise ValueError(
            "attachment downloads need a session from attachments.guarded_session("
            f"allow_private_addresses={allow_private_addresses})"
        )


def _check_status(status: int, where: str) -> None:
    if status < 400:
        return
    error = TransientSendError if is_transient_status(status) else PermanentSendError
    raise error(f"attachment from {where}: HTTP {status}")


def _read_limited(response: requests.Response, max_bytes: int, budget: float, where: str) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise PermanentSendError(f"attachment from {where} is too large: {declared} bytes > {max_bytes}")
    deadline = time.monotonic() + budget
    chunks, size = [], 0
    for chunk in response.iter_content(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise PermanentSendError(f"attachment from {where} is too large: over {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise TransientSendError(f"attachment from {where}: download took too long")
        chunks.append(chunk)
    return b"".join(chunks)


def read(path: str, *, directory: str | os.PathLike | None, max_bytes: int) -> Attachment:
    """Read a file that resolves (symlinks included) inside ``directory``."""
    target = _inside(path, directory)
    try:
        size = target.stat().st_size
        if size > max_bytes:
            raise PermanentSendError(f"attachment {path!r} is too large: {size} bytes > {max_bytes}")
        data = target.read_bytes()
    except OSError as error:
        raise PermanentSendError(f"attachment {path!r}: {error.strerror}") from None
    if len(data) > max_bytes:  # it grew between stat and read
        raise PermanentSendError(f"attachment {path!r} is too large: over {max_bytes} bytes")
    return Attachment(filename=target.name, content_type=_content_type("", target.name), data=data)


def _inside(path: str, directory: str | os.PathLike | None) -> Path:
    """The resolved file ``path`` names, refusing anything that leaves ``directory``."""
    if not directory:
        raise PermanentSendError(
            f"attachment {path!r}: file attachments are disabled (no attachment directory configured)"
        )
    try:
        base = Path(directory).resolve(strict=True)
    except OSError:
        raise PermanentSendError(f"attachment directory {str(directory)!r} does not exist") from None
    # Resolving follows every symlink, so an escape by link is caught like one by "..".
    target = (base / path).resolve()
    if not target.is_relative_to(base):
        raise PermanentSendError(f"attachment {path!r} is outside the attachment directory")
    if not target.is_file():
        raise PermanentSendError(f"attachment {path!r} does not exist or is not a regular file")
    return target


def _url_filename(url: str) -> str:
    name = PurePosixPath(unquote(urlsplit(url).path)).name
    return name or "attachment"


def _content_type(declared: str, filename: str) -> str:
    declared = declared.split(";", 1)[0].strip().lower()
    if declared and "/" in declared:
        return declared
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"
