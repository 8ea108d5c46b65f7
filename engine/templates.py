"""Sandboxed Jinja2: compile-time checks for workflow validation, rendering for deliveries.

Templates run in an immutable sandbox with strict undefined, so a misspelt
keyword is an error and never an empty string, and a template cannot reach
Python internals or mutate the data it is given.
"""

from __future__ import annotations

import datetime as dt
import difflib
from zoneinfo import ZoneInfo

from babel import dates as babel_dates
from jinja2 import StrictUndefined, TemplateSyntaxError, meta, pass_context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.keywords import EVERY as EVERY_KEYWORD


def is_template(text: str) -> bool:
    """Whether *text* contains Jinja2 markup."""
    return "{{" in text or "{%" in text


def _moment(value) -> dt.datetime:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value


def _locale(context) -> str:
    return context.get("customer_locale") or "en"


def _zone(context) -> ZoneInfo:
    return ZoneInfo(context.get("location_timezone") or "UTC")


@pass_context
def format_datetime(context, value, format: str = "medium") -> str:
    """``{{ appointment.starts_at | format_datetime('short') }}``: locale-aware, in the location's zone."""
    return babel_dates.format_datetime(_moment(value), format, tzinfo=_zone(context), locale=_locale(context))


@pass_context
def format_date(context, value, format: str = "medium") -> str:
    """Date part only, e.g. ``format_date('EEEE d MMMM')``."""
    moment = _moment(value).astimezone(_zone(context))
    return babel_dates.format_date(moment.date(), format, locale=_locale(context))


@pass_context
def format_time(context, value, format: str = "short") -> str:
    """Time part only, 12- or 24-hour as the customer's locale writes it."""
    return babel_dates.format_time(_moment(value), format, tzinfo=_zone(context), locale=_locale(context))


def make_environment() -> ImmutableSandboxedEnvironment:
    """The one template environment: sandboxed, strict, and with apptflow's filters."""
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
    )
    env.filters.update(
        format_datetime=format_datetime, format_date=format_date, format_time=format_time
    )
    return env


ENVIRONMENT = make_environment()


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
