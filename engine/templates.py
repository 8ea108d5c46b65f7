"""Sandboxed Jinja2: compile-time checks for workflow validation, rendering for deliveries.

Templates run in an immutable sandbox with strict undefined, so a misspelt
keyword is an error and never an empty string, and a template cannot reach
Python internals or mutate the data it is given.
"""

from __future__ import annotations

import datetime as dt
import difflib
import sys
import time
from typing import Any
from zoneinfo import ZoneInfo

from babel import dates as babel_dates
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, pass_context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from engine.errors import RenderError
from engine.keywords import EVERY as EVERY_KEYWORD

# Bounds on one template's rendering, so a hostile template cannot hang a worker.
RENDER_TIMEOUT = 2.0
MAX_OUTPUT = 100_000


def is_template(text: str) -> bool:
    """Whether *text* contains Jinja2 markup."""
    return "{{" in text or "{%" in text


def plain_spaces(text: str) -> str:
    """CLDR puts narrow and no-break spaces in dates ("11:00\u202fAM"); an SMS in GSM-7 cannot carry them."""
    return text.replace("\u202f", " ").replace("\u00a0", " ")


def _moment(value) -> dt.datetime:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value


def _locale(context) -> str:
    return context.get("_locale") or "en"


def _zone(context) -> ZoneInfo:
    return ZoneInfo(context.get("location_timezone") or "UTC")


@pass_context
def format_datetime(context, value, format: str = "medium") -> str:
    """``{{ appointment.starts_at | format_datetime('short') }}``: locale-aware, in the location's zone."""
    return plain_spaces(
        babel_dates.format_datetime(_moment(value), format, tzinfo=_zone(context), locale=_locale(context)))


@pass_context
def format_date(context, value, format: str = "medium") -> str:
    """Date part only, e.g. ``format_date('EEEE d MMMM')``."""
    moment = _moment(value).astimezone(_zone(context))
    return plain_spaces(babel_dates.format_date(moment.date(), format, locale=_locale(context)))


@pass_context
def format_time(context, value, format: str = "short") -> str:
    """Time part only, 12- or 24-hour as the customer's locale writes it."""
    return plain_spaces(
        babel_dates.format_time(_moment(value), format, tzinfo=_zone(context), locale=_locale(context)))


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, also refusing to build huge values with ``*`` and ``**``."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64:
            raise RenderError("exponents above 64 are refused in templates")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and len(seq) * times > MAX_OUTPUT:
                    raise RenderError(f"template output limit: a repeated value longer than {MAX_OUTPUT} characters")
        return super().call_binop(context, operator, left, right)


def make_environment() -> Sandbox:
    """The one template environment: sandboxed, strict, and with apptflow's filters."""
    env = Sandbox(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True,
        finalize=lambda value: "" if value is None else value,
    )
    env.filters.update(
        format_datetime=format_datetime, format_date=format_date, format_time=format_time
    )
    return env


ENVIRONMENT = make_environment()


def render(source: str, context: dict[str, Any], *, timeout: float = RENDER_TIMEOUT,
           max_output: int = MAX_OUTPUT) -> str:
    """Render *source* with *context*, within *timeout* seconds and *max_output* characters.

    Every failure — a missing keyword or custom field, a sandbox violation, a
    template too slow or too long — is a RenderError saying what went wrong.
    """
    try:
        template = ENVIRONMENT.from_string(source)
    except TemplateSyntaxError as error:
        raise RenderError(f"template error on line {error.lineno}: {error.message}") from None
    deadline = _Deadline(timeout)
    parts: list[str] = []
    size = 0
    previous = sys.gettrace()
    sys.settrace(deadline.trace)
    try:
        for chunk in template.generate(context):
            size += len(chunk)
            if size > max_output:
                raise RenderError(f"template output limit: more than {max_output} characters")
            parts.append(chunk)
    except RenderError:
        raise
    except SecurityError as error:
        raise RenderError(f"not allowed in a template: {error}") from None
    except UndefinedError as error:
        raise RenderError(f"undefined in template: {error.message}") from None
    except Exception as error:  # noqa: BLE001 - anything a template can raise is its author's mistake
        raise RenderError(f"template failed: {type(error).__name__}: {error}") from None
    finally:
        sys.settrace(previous)
    return "".join(parts)


class _Deadline:
    """A trace function that stops template code running past its time.

    Only frames of compiled templates are traced line by line, so the cost
    stays within rendering; loops inside C code are bounded by the sandbox
    (range() is capped, `*` and `**` are checked).
    """

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds
        self.seconds = seconds

    def trace(self, frame, event, arg):
        if time.monotonic() > self.end:
            raise RenderError(f"template took longer than {self.seconds:g} s")
        return self.trace if frame.f_code.co_filename == "<template>" else None


def check(source: str, keywords: frozenset[str], context: str = "") -> list[str]:
    """Every problem with *source* as a template offered *keywords*: syntax, unknown filters, unknown names.

    *context* names what offers the keywords (a trigger type), for names that
    exist elsewhere but not there.
    """
    try:
        parsed = ENVIRONMENT.parse(source)
        ENVIRONMENT.from_string(source)  # also catches unknown filters and tests
    except TemplateSyntaxError as error:
        return [f"template error on line {error.lineno}: {error.message}"]
    problems = []
    for name in sorted(meta.find_undeclared_variables(parsed) - keywords):
        if name in EVERY_KEYWORD:
            problems.append(f"keyword '{name}' is not available for {context or 'this trigger'}")
            continue
        close = difflib.get_close_matches(name, keywords, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        problems.append(f"unknown keyword '{name}'{hint}")
    return problems
