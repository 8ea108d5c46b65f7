"""Sandboxed Jinja2: compile-time checks for workflow validation, rendering for deliveries.

Templates run in an immutable sandbox with strict undefined, so a misspelt
keyword is an error and never an empty string, and a template cannot reach
Python internals or mutate the data it is given.

A template cannot hang a worker or fill its memory either: no single
operation may make a value longer than the output limit (see
:mod:`engine.sandbox`), and between operations, a deadline stops slow
templates. Nothing a template says runs while it is compiled (constant
folding is off); validating it also computes its constant operations, but
through the sandbox's bounded operators (see :mod:`engine.refusals`), so it
costs little more than parsing it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import io
import re
import struct
import sys
import time
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, pass_context
from jinja2.sandbox import SecurityError

from engine.errors import RenderError
from engine.keywords import EVERY as EVERY_KEYWORD
from engine.keywords import booknetic_absence
from engine.refusals import refused
from engine.sandbox import MAX_OUTPUT, Sandbox, bounded_filter, bounded_lipsum, fits, output_limit

# Bounds on one template's rendering, so a hostile template cannot hang a worker (MAX_OUTPUT: engine.sandbox).
RENDER_TIMEOUT = 2.0


def is_template(text: str) -> bool:
    """Whether *text* contains Jinja2 markup."""
    return "{{" in text or "{%" in text


# Jinja's own markup, left alone; and Booknetic's single-brace keyword outside it.
_JINJA_MARKUP = re.compile(r"(\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\})", re.S)
_SINGLE_BRACE = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")
_LOOKS_LIKE_KEYWORD = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")


def from_booknetic(source: str) -> str:
    """Booknetic's ``{customer_full_name}`` written as Jinja's ``{{ customer_full_name }}``.

    Outside Jinja's own markup, ``{name}`` is converted when *name* is a keyword, or looks like
    one (lower case words joined by ``_``), so that a misspelt one is reported like any unknown
    keyword; other braces (``{SUMMER}``, ``{"a": 1}``, CSS) are left as written.
    """
    if "{" not in source:
        return source

    def keyword(match: re.Match) -> str:
        name = match.group(1)
        return f"{{{{ {name} }}}}" if name in EVERY_KEYWORD or _LOOKS_LIKE_KEYWORD.fullmatch(name) else match.group(0)

    parts = _JINJA_MARKUP.split(source)
    return "".join(part if n % 2 else _SINGLE_BRACE.sub(keyword, part) for n, part in enumerate(parts))


def plain_spaces(text: str) -> str:
    """CLDR puts narrow and no-break spaces in dates ("11:00\u202fAM"); an SMS in GSM-7 cannot carry them."""
    return text.replace("\u202f", " ").replace("\u00a0", " ")


_FIXED_OFFSET = re.compile(r"[+-](?:[01][0-9]|2[0-3]):[0-5][0-9]")


def zone(name: str | None) -> ZoneInfo:
    """An IANA zone, or a fixed offset from UTC written ``+05:45``; UTC when the name is empty or unknown."""
    if isinstance(name, str) and _FIXED_OFFSET.fullmatch(name):
        return _fixed_zone(name)
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return ZoneInfo("UTC")


@functools.lru_cache(maxsize=64)
def _fixed_zone(name: str) -> ZoneInfo:
    """*name* (``+05:45``) as a ZoneInfo whose key is *name*, so that it goes wherever an IANA zone goes.

    A site set to "UTC+5:45" rather than to a city has no IANA zone (``Etc/GMT-5`` exists for whole hours
    only, with the sign inverted): the zone is read from a TZif file made here, with no transitions and the
    POSIX rule ``<+0545>-5:45`` (RFC 8536)."""
    sign, hours, minutes = name[0], int(name[1:3]), int(name[4:6])
    seconds = (hours * 3600 + minutes * 60) * (-1 if sign == "-" else 1)
    abbreviation = name.replace(":", "").encode("ascii") + b"\0"
    block = (b"TZif2" + bytes(15) + struct.pack(">6l", 0, 0, 0, 0, 1, len(abbreviation))
             + struct.pack(">lBB", seconds, 0, 0) + abbreviation)  # one local time type, nothing else
    rule = f"<{name.replace(':', '')}>{'+' if sign == '-' else '-'}{hours}:{minutes:02d}"
    return ZoneInfo.from_file(io.BytesIO(block + block + f"\n{rule}\n".encode("ascii")), key=name)


def locale_named(name: Any) -> Locale | None:
    """The Babel locale *name* means (``fr_FR``, ``fr-FR``), or None for an empty or unknown one.

    The process locales ``C`` and ``POSIX`` are no customer's language, although Babel 2.16+ reads
    them as ``en_US_POSIX``: they fall back like an unknown one."""
    if not isinstance(name, str) or not name or name.split(".")[0].upper() in ("C", "POSIX"):
        return None
    try:
        return Locale.parse(name.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return None


class Fields(dict):
    """A record or custom-field object in the context, knowing its own path for error messages."""

    __slots__ = ("path",)

    def __init__(self, path: str, values: Mapping[str, Any] = ()):
        super().__init__(values)
        self.path = path


class _StrictFields(StrictUndefined):
    """Strict undefined that says which object lacks a field: ``appointment.custom has no field 'x'``."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        owner, name = self._undefined_obj, self._undefined_name
        if self._undefined_hint or not isinstance(owner, Fields):
            return super()._undefined_message
        close = difflib.get_close_matches(str(name), [str(key) for key in owner], n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{owner.path} has no field {name!r}{hint}"


# --- date filters: the customer's locale, the location's zone ------------------------------------


def _locale(context) -> Locale:
    return locale_named(context.get("_locale")) or Locale.parse("en")


def _zone(context) -> ZoneInfo:
    return zone(context.get("location_timezone"))


def _moment(value: Any, filter_name: str) -> dt.date:
    """A date or an aware datetime (naive ones are UTC, like every time inside) from a value or ISO text."""
    if isinstance(value, str):
        value = _parse_iso(value, filter_name)
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, dt.date):
        return value
    raise RenderError(f"{filter_name}: not a date or time: {_glimpse(value)}")


def _parse_iso(text: str, filter_name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)  # a date alone stays that date, whatever the zone
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise RenderError(f"{filter_name}: not an ISO 8601 date or time: {_glimpse(text)}") from None


def _timed(value: Any, filter_name: str) -> dt.datetime:
    moment = _moment(value, filter_name)
    if not isinstance(moment, dt.datetime):
        raise RenderError(f"{filter_name}: {moment.isoformat()} is a date without a time")
    return moment


def _blank(value: Any) -> bool:
    # Babel formats "now" for None: an empty custom field must not print today's date.
    return value is None or (isinstance(value, str) and not value.strip())


def _glimpse(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else type(value).__name__
    return text if len(text) <= 40 else f"{text[:37]}..."


@pass_context
def format_datetime(context, value, format: str = "medium") -> str:
    """``{{ appointment.starts_at | format_datetime('short') }}``: locale-aware, in the location's zone."""
    if _blank(value):
        return ""
    moment = _timed(value, "format_datetime")
    return plain_spaces(
        babel_dates.format_datetime(moment, format, tzinfo=_zone(context), locale=_locale(context)))


@pass_context
def format_date(context, value, format: str = "medium") -> str:
    """Date part only, e.g. ``format_date('EEEE d MMMM')``; a date without a time is shown as it is."""
    if _blank(value):
        return ""
    moment = _moment(value, "format_date")
    if isinstance(moment, dt.datetime):
        moment = moment.astimezone(_zone(context)).date()
    return plain_spaces(babel_dates.format_date(moment, format, locale=_locale(context)))


@pass_context
def format_time(context, value, format: str = "short") -> str:
    """Time part only, 12- or 24-hour as the customer's locale writes it."""
    if _blank(value):
        return ""
    moment = _timed(value, "format_time")
    return plain_spaces(babel_dates.format_time(moment, format, tzinfo=_zone(context), locale=_locale(context)))


# --- the environment -----------------------------------------------------------------------------


@pass_context  # a finalize that needs the context also stops Jinja computing {{ constants }} at compile time
def _finalize(context, value: Any) -> Any:
    return "" if value is None else fits(value, "a printed value")


def make_environment() -> Sandbox:
    """The one template environment: sandboxed, strict, bounded, and with apptflow's filters."""
    env = Sandbox(
        undefined=_StrictFields, autoescape=False, keep_trailing_newline=True, finalize=_finalize,
        optimized=False,  # constant folding would run template code at compile time, unbounded
    )
    env.filters.update(format_datetime=format_datetime, format_date=format_date, format_time=format_time)
    env.filters = {name: bounded_filter(name, func) for name, func in env.filters.items()}
    env.globals["lipsum"] = bounded_lipsum
    return env


ENVIRONMENT = make_environment()


# --- rendering and checking ----------------------------------------------------------------------


def render(source: str, context: dict[str, Any], *, timeout: float = RENDER_TIMEOUT,
           max_output: int = MAX_OUTPUT) -> str:
    """Render *source* with *context*, within *timeout* seconds and *max_output* characters.

    Every failure — a missing keyword or custom field, a sandbox violation, a
    template too slow or too long — is a RenderError saying what went wrong.
    """
    try:
        template = _compiled(source)
    except TemplateSyntaxError as error:
        raise RenderError(f"template error on line {error.lineno}: {error.message}") from None
    except _UNCOMPILABLE as error:
        raise RenderError(_uncompilable(error)) from None
    deadline = _Deadline(timeout)
    limit = output_limit.set(max_output)
    previous = sys.gettrace()
    sys.settrace(deadline.trace)
    try:
        return _generate(template, context, max_output)
    except RenderError:
        raise
    except _TimeUp:
        raise RenderError(f"template took longer than {timeout:g} s") from None
    except SecurityError as error:
        raise RenderError(f"not allowed in a template: {error}") from None
    except UndefinedError as error:
        raise RenderError(f"undefined in template: {error.message}") from None
    except Exception as error:  # noqa: BLE001 - anything a template can raise is its author's mistake
        raise RenderError(f"template failed: {type(error).__name__}: {error}") from None
    finally:
        sys.settrace(previous)
        output_limit.reset(limit)


# What Jinja's parser or Python's compiler raise for a template past their own limits: an integer
# literal of more than 4,300 digits, expressions nested too deep.
_UNCOMPILABLE = (ValueError, SyntaxError, RecursionError, MemoryError)


def _uncompilable(error: BaseException) -> str:
    return f"template too large or nested too deep to compile: {type(error).__name__}: {error}"


@functools.lru_cache(maxsize=1024)
def _compiled(source: str):
    """A compiled template, kept: compiling costs ten times what rendering does, and workflows repeat."""
    return ENVIRONMENT.from_string(source)


def _generate(template, context: dict[str, Any], max_output: int) -> str:
    parts: list[str] = []
    size = 0
    for chunk in template.generate(context):
        size += len(chunk)
        if size > max_output:
            raise RenderError(f"template output limit: more than {max_output} characters")
        parts.append(chunk)
    return "".join(parts)


class _TimeUp(BaseException):
    """The template ran past its deadline.

    A BaseException, so that no ``except Exception`` in a library the
    template calls can swallow it: Python unsets a trace function that
    raises, and a swallowed deadline would never come back.
    """


class _Deadline:
    """A trace function that stops template code running past its time.

    Template frames are traced line by line; every other Python frame is
    checked when it is entered (or resumed), so filters that loop in Python
    stop too. One operation in C cannot be interrupted: those are bounded by
    size instead (see :mod:`engine.sandbox`).
    """

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def trace(self, frame, event, arg):
        if time.monotonic() > self.end:
            raise _TimeUp
        return self.trace if frame.f_code.co_filename == "<template>" else None


@functools.lru_cache(maxsize=1024)
def names_in(source: str) -> frozenset[str]:
    """The top-level names a template reads (empty for plain text or a template that does not parse)."""
    if not is_template(source):
        return frozenset()
    try:
        return frozenset(meta.find_undeclared_variables(ENVIRONMENT.parse(source)))
    except (TemplateSyntaxError, *_UNCOMPILABLE):
        return frozenset()  # rendering it says what is wrong


def names_used(source: str) -> set[str]:
    """The names *source* reads from its context (none when it does not parse: check() says why)."""
    try:
        return set(meta.find_undeclared_variables(ENVIRONMENT.parse(source)))
    except (TemplateSyntaxError, *_UNCOMPILABLE):
        return set()


def check(source: str, keywords: frozenset[str], context: str = "") -> list[str]:
    """Every problem with *source* as a template offered *keywords*: syntax, unknown filters, unknown names,
    and what the sandbox refuses wherever it meets it (``''.__class__``, ``range(10**9)``).

    *context* names what offers the keywords (a trigger type), for names that
    exist elsewhere but not there.
    """
    try:
        parsed = ENVIRONMENT.parse(source)
        _compiled(source)  # also catches unknown filters and tests
    except TemplateSyntaxError as error:
        return [f"template error on line {error.lineno}: {error.message}"]
    except _UNCOMPILABLE as error:
        return [_uncompilable(error)]
    problems = []
    for name in sorted(meta.find_undeclared_variables(parsed) - keywords):
        if name in EVERY_KEYWORD:
            problems.append(f"keyword '{name}' is not available for {context or 'this trigger'}")
            continue
        absence = booknetic_absence(name)
        if absence:
            problems.append(f"'{name}' is a Booknetic keyword that apptflow does not offer: {absence}")
            continue
        close = difflib.get_close_matches(name, keywords, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        problems.append(f"unknown keyword '{name}'{hint}")
    return problems + refused(parsed, ENVIRONMENT)
