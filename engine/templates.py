"""Sandboxed Jinja2: compile-time checks for workflow validation, rendering for deliveries.

Templates run in an immutable sandbox with strict undefined, so a misspelt
keyword is an error and never an empty string, and a template cannot reach
Python internals or mutate the data it is given.

A template cannot hang a worker or fill its memory either. Jinja's sandbox
does not bound resources, and a trace function cannot interrupt one long
operation in C (``'x'.center(10**9)``), so no single operation is allowed to
make a value longer than the output limit: repetition, powers, joins,
padding and format widths are checked before they run, and every value a
filter or call returns after. Between operations, a deadline stops slow
templates. Nothing a template says runs while it is compiled (constant
folding is off), so validating a template costs no more than parsing it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import inspect
import re
import string
import sys
import time
from collections.abc import Iterator, KeysView, Mapping, ValuesView
from contextvars import ContextVar
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates
from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, meta, pass_context
from jinja2.compiler import CodeGenerator
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import generate_lorem_ipsum

from engine.errors import RenderError
from engine.keywords import EVERY as EVERY_KEYWORD

# Bounds on one template's rendering, so a hostile template cannot hang a worker.
RENDER_TIMEOUT = 2.0
MAX_OUTPUT = 100_000
# About 1,200 digits: more than any number a message needs, far less than a slow one.
MAX_INT_BITS = 4096

_limit: ContextVar[int] = ContextVar("template_output_limit", default=MAX_OUTPUT)


def is_template(text: str) -> bool:
    """Whether *text* contains Jinja2 markup."""
    return "{{" in text or "{%" in text


def plain_spaces(text: str) -> str:
    """CLDR puts narrow and no-break spaces in dates ("11:00\u202fAM"); an SMS in GSM-7 cannot carry them."""
    return text.replace("\u202f", " ").replace("\u00a0", " ")


def zone(name: str | None) -> ZoneInfo:
    """An IANA zone; UTC when the name is empty or unknown."""
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return ZoneInfo("UTC")


def locale_named(name: Any) -> Locale | None:
    """The Babel locale *name* means (``fr_FR``, ``fr-FR``), or None for an empty or unknown one."""
    if not isinstance(name, str) or not name:
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


# --- size bounds ---------------------------------------------------------------------------------


def _text_size(value: Any, budget: int) -> int:
    """About how long ``str(value)`` is, counting no further than past *budget*: cheap for any value."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Undefined) or value is None or isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return value.bit_length() * 3 // 10 + 2
    if isinstance(value, (bytes, bytearray)):
        return 4 * len(value)
    if isinstance(value, Mapping):
        items = (part for pair in value.items() for part in pair)
    elif isinstance(value, (list, tuple, set, frozenset, KeysView, ValuesView)):
        items = value
    else:
        return 16
    total = 2
    for item in items:
        total += 2 + _text_size(item, budget - total)
        if total > budget:
            break
    return total


def _refuse(what: str) -> RenderError:
    return RenderError(f"template output limit: {what} longer than {_limit.get()} characters")


def _fits(value: Any, what: str) -> Any:
    """*value*, after checking that its text is within the limit."""
    if _text_size(value, _limit.get()) > _limit.get():
        raise _refuse(what)
    return value


def _within(size: int, what: str) -> None:
    if size > _limit.get():
        raise _refuse(what)


def _count(value: Any, what: str) -> int:
    """An integer argument that says how large a result is (a width, a count)."""
    number = value if isinstance(value, int) else len(value) if isinstance(value, str) else 0
    _within(number, what)
    return number


def _bounded_items(items: Iterator, what: str) -> Iterator:
    """A lazy result (``map``) whose items together stay within the limit."""
    total = 0
    for item in items:
        total += _text_size(item, _limit.get())
        _within(total, what)
        yield item


def _checked(result: Any, what: str) -> Any:
    if isinstance(result, Iterator):
        return _bounded_items(result, what)
    return _fits(result, what)


_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?([a-zA-Z%])")


def _check_percent(template: Any, arguments: Any) -> None:
    """``'%9d' % x``: no field wider than the limit, no width taken from the arguments."""
    if not isinstance(template, str):
        return
    for width, precision, _ in _PERCENT.findall(template):
        if "*" in (width, precision):
            raise RenderError("'*' widths are not allowed in templates")
        _within(int(width or 0), "a % field")
        _within(int(precision or 0), "a % field")
    _fits(arguments, "the values of a % format")


def _check_format(template: str) -> None:
    """``'{:>9}'.format(x)``: no width or precision above the limit, none computed at run time."""
    try:
        fields = [spec for _, name, spec, _ in string.Formatter().parse(template) if name is not None]
    except ValueError:
        return  # str.format itself says what is wrong
    for spec in fields:
        if "{" in spec:
            raise RenderError("computed format widths ('{:{}}') are not allowed in templates")
        for digits in re.findall(r"\d+", spec or ""):
            _within(int(digits), "a format field")


def _check_repeat(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise RenderError(f"numbers above {MAX_INT_BITS} bits are refused in templates")
        return
    for sequence, times in ((left, right), (right, left)):
        if isinstance(sequence, (str, list, tuple)) and isinstance(times, int) and times > 0:
            _within(times * _text_size(sequence, _limit.get() // times + 1), "a repeated value")


def _check_power(base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if abs(base).bit_length() * exponent > MAX_INT_BITS:
            raise RenderError(f"powers above {MAX_INT_BITS} bits are refused in templates")


def _check_plus(left: Any, right: Any) -> None:
    if isinstance(left, (str, list, tuple)):
        _check_concatenation(left, right)


def _check_concatenation(*parts: Any) -> None:
    total = 0
    for part in parts:
        total += _text_size(part, _limit.get())
        _within(total, "a joined value")


def _replace_size(text: str, old: Any, new: Any, count: Any = -1) -> int:
    old, new = str(old), str(new)
    times = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    return len(text) + times * (len(new) - len(old))


def _join_size(separator: Any, items: list) -> int:
    total = max(len(items) - 1, 0) * len(str(separator))
    for item in items:
        total += _text_size(item, _limit.get())
        if total > _limit.get():
            break
    return total


# Checks before the str methods whose result can dwarf the string, with the method's own parameters.
# A check that has to read a lazy argument returns the arguments to call with instead.
def _pad(text, width=0, fillchar=" "):
    _count(width, "a padded value")


def _tabs(text, tabsize=8):
    _within(len(text) + text.count("\t") * _count(tabsize, "a tab size"), "a value with tabs expanded")


def _str_replace(text, old, new, count=-1):
    _within(_replace_size(text, old, new, count), "a replaced value")


def _str_join(text, iterable):
    items = list(iterable)
    _within(_join_size(text, items), "a joined value")
    return (items,)


def _translate(text, table):
    values = table.values() if isinstance(table, Mapping) else table if isinstance(table, (list, tuple)) else ()
    longest = max((len(v) for v in values if isinstance(v, str)), default=1)
    _within(len(text) * longest, "a translated value")


def _formatting(text, *args, **kwargs):
    _check_format(text)


_STR_METHODS = {
    "center": _pad, "ljust": _pad, "rjust": _pad, "zfill": _pad, "expandtabs": _tabs,
    "replace": _str_replace, "join": _str_join, "translate": _translate,
    "format": _formatting, "format_map": _formatting,
}


# Checks before the filters whose result can dwarf their input, on the filter's bound arguments.
def _indent_check(a):
    lines = a["s"].count("\n") + 1 if isinstance(a["s"], str) else 1
    _within(_text_size(a["s"], _limit.get()) + lines * _count(a["width"], "an indent"), "an indented value")


def _wordwrap_check(a):
    size, width = _text_size(a["s"], _limit.get()), a["width"] if isinstance(a["width"], int) else 1
    breaks = size // max(width, 1) + str(a["s"]).count("\n") + 1
    _within(size + breaks * len(str(a["wrapstring"] or "\n")), "a wrapped value")


def _urlize_check(a):
    text = str(a["value"])
    per_link = 40 + len(str(a["target"] or "")) + len(str(a["rel"] or ""))
    _within(2 * len(text) + len(text.split()) * per_link, "a value with links")


def _tojson_check(a):
    if a["indent"] is not None and _count(a["indent"], "an indent") > 16:
        raise RenderError("tojson: an indent wider than 16 is not allowed in templates")


_FILTER_CHECKS = {
    "center": lambda a: _count(a["width"], "a centred value"),
    "indent": _indent_check,
    "wordwrap": _wordwrap_check,
    "replace": lambda a: _within(_replace_size(str(a["s"]), a["old"], a["new"], -1 if a["count"] is None
                                               else a["count"]), "a replaced value"),
    "join": lambda a: _within(_join_size(a["d"], a["value"]), "a joined value"),
    "format": lambda a: _check_percent(str(a["value"]), a["kwargs"] or a["args"]),
    "batch": lambda a: _count(a["linecount"], "a batch"),
    "slice": lambda a: _count(a["slices"], "a slice"),
    "tojson": _tojson_check,
    "urlize": _urlize_check,
}
# Filters whose check reads the items: a lazy input (``map``) is listed first.
_LISTED = {"join": "value"}


def _bounded_filter(name: str, func):
    """*func* with its input and result held within the limit, and its own check first if it has one."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) else 0
    check, signature = _FILTER_CHECKS.get(name), inspect.signature(func)

    @functools.wraps(func)
    def bounded(*args, **kwargs):
        if check is not None:
            args, kwargs = _checked_arguments(name, check, signature, args, kwargs)
        for value in (*args[skip:], *kwargs.values()):
            _fits(value, f"the input of |{name}")
        return _checked(func(*args, **kwargs), f"the result of |{name}")

    return bounded


def _checked_arguments(name, check, signature, args, kwargs):
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return args, kwargs  # arguments the filter does not take: it says so itself
    bound.apply_defaults()
    listed = _LISTED.get(name)
    if listed and isinstance(bound.arguments[listed], Iterator):
        bound.arguments[listed] = list(bound.arguments[listed])
    check(bound.arguments)
    return bound.args, bound.kwargs


def _bounded_lipsum(n=5, html=True, min=20, max=100):
    """Jinja's ``lipsum()``, at most as long as the limit allows."""
    _within(_count(n, "lorem ipsum") * _count(max, "lorem ipsum") * 12, "lorem ipsum")
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


# --- the environment -----------------------------------------------------------------------------


class _Generator(CodeGenerator):
    """Compiles ``a ~ b`` through :meth:`Sandbox.joined`, so it is bounded like ``a + b``."""

    def visit_Concat(self, node, frame) -> None:
        markup = "context.eval_ctx.autoescape" if frame.eval_ctx.volatile else repr(bool(frame.eval_ctx.autoescape))
        self.write("environment.joined((")
        for argument in node.nodes:
            self.visit(argument, frame)
            self.write(", ")
        self.write(f"), {markup})")


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, with every operation that can build a huge value bounded."""

    code_generator_class = _Generator
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    _BINOP_CHECKS = {"*": _check_repeat, "**": _check_power, "+": _check_plus, "%": _check_percent}

    def call_binop(self, context, operator, left, right):
        self._BINOP_CHECKS[operator](left, right)
        return _fits(super().call_binop(context, operator, left, right), f"the result of {operator}")

    def joined(self, parts: tuple, markup: bool) -> str:
        """``a ~ b``."""
        _check_concatenation(*parts)
        return (markup_join if markup else str_join)(parts)

    def concat(self, parts) -> str:
        """The text of a block: ``{% set x %}``, a macro, ``{% filter %}``."""
        parts = list(parts)
        _within(sum(map(len, parts)), "a block's text")
        return "".join(parts)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - Jinja's own spelling
        for value in (*args, *kwargs.values()):
            _fits(value, "an argument")
        owner = getattr(__obj, "__self__", None)
        check = _STR_METHODS.get(getattr(__obj, "__name__", "")) if isinstance(owner, str) else None
        if check is not None:
            args = check(owner, *args, **kwargs) or args
        return _checked(super().call(__context, __obj, *args, **kwargs), "the result of a call")

    def wrap_str_format(self, value):
        wrapper = super().wrap_str_format(value)
        if wrapper is not None:
            _check_format(value.__self__)
        return wrapper

    def getattr(self, obj, attribute):
        # A field wins over a dict method of the same name: appointment.custom.items is the field.
        if isinstance(obj, Mapping) and isinstance(attribute, str) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


@pass_context  # a finalize that needs the context also stops Jinja computing {{ constants }} at compile time
def _finalize(context, value: Any) -> Any:
    return "" if value is None else _fits(value, "a printed value")


def make_environment() -> Sandbox:
    """The one template environment: sandboxed, strict, bounded, and with apptflow's filters."""
    env = Sandbox(
        undefined=_StrictFields, autoescape=False, keep_trailing_newline=True, finalize=_finalize,
        optimized=False,  # constant folding would run template code at compile time, unbounded
    )
    env.filters.update(format_datetime=format_datetime, format_date=format_date, format_time=format_time)
    env.filters = {name: _bounded_filter(name, func) for name, func in env.filters.items()}
    env.globals["lipsum"] = _bounded_lipsum
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
    deadline = _Deadline(timeout)
    limit = _limit.set(max_output)
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
        _limit.reset(limit)


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
    size instead (see the module's docstring).
    """

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def trace(self, frame, event, arg):
        if time.monotonic() > self.end:
            raise _TimeUp
        return self.trace if frame.f_code.co_filename == "<template>" else None


def check(source: str, keywords: frozenset[str], context: str = "") -> list[str]:
    """Every problem with *source* as a template offered *keywords*: syntax, unknown filters, unknown names.

    *context* names what offers the keywords (a trigger type), for names that
    exist elsewhere but not there.
    """
    try:
        parsed = ENVIRONMENT.parse(source)
        _compiled(source)  # also catches unknown filters and tests
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
