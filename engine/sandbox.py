"""The resource bounds of the template sandbox: what one template operation may cost.

A template cannot hang a worker or fill its memory. Jinja's sandbox does not
bound resources, and a trace function cannot interrupt one long operation in
C (``'x'.center(10**9)``), so no single operation is allowed to make a value
longer than the output limit: repetition, powers, joins, padding and format
widths are checked before they run, and every value a filter or call returns
after. The deadline between operations lives with rendering, in
:mod:`engine.templates`.
"""

from __future__ import annotations

import functools
import inspect
import re
import string
from collections.abc import Iterator, KeysView, Mapping, ValuesView
from contextvars import ContextVar
from typing import Any

from jinja2 import Undefined
from jinja2.compiler import CodeGenerator
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum

from engine.errors import RenderError

# Bounds on one template's rendering, so a hostile template cannot hang a worker.
MAX_OUTPUT = 100_000
# About 1,200 digits: more than any number a message needs, far less than a slow one.
MAX_INT_BITS = 4096

# The limit of the rendering under way (render() sets it from its max_output).
output_limit: ContextVar[int] = ContextVar("template_output_limit", default=MAX_OUTPUT)


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
    return RenderError(f"template output limit: {what} longer than {output_limit.get()} characters")


def fits(value: Any, what: str) -> Any:
    """*value*, after checking that its text is within the limit."""
    if _text_size(value, output_limit.get()) > output_limit.get():
        raise _refuse(what)
    return value


def _within(size: int, what: str) -> None:
    if size > output_limit.get():
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
        total += _text_size(item, output_limit.get())
        _within(total, what)
        yield item


def _checked(result: Any, what: str) -> Any:
    if isinstance(result, Iterator):
        return _bounded_items(result, what)
    return fits(result, what)


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
    fits(arguments, "the values of a % format")


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
            _within(times * _text_size(sequence, output_limit.get() // times + 1), "a repeated value")


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
        total += _text_size(part, output_limit.get())
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
        total += _text_size(item, output_limit.get())
        if total > output_limit.get():
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
    _within(_text_size(a["s"], output_limit.get()) + lines * _count(a["width"], "an indent"), "an indented value")


def _wordwrap_check(a):
    size, width = _text_size(a["s"], output_limit.get()), a["width"] if isinstance(a["width"], int) else 1
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


def bounded_filter(name: str, func):
    """*func* with its input and result held within the limit, and its own check first if it has one."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) else 0
    check, signature = _FILTER_CHECKS.get(name), inspect.signature(func)

    @functools.wraps(func)
    def bounded(*args, **kwargs):
        if check is not None:
            args, kwargs = _checked_arguments(name, check, signature, args, kwargs)
        for value in (*args[skip:], *kwargs.values()):
            fits(value, f"the input of |{name}")
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


def bounded_lipsum(n=5, html=True, min=20, max=100):
    """Jinja's ``lipsum()``, at most as long as the limit allows."""
    _within(_count(n, "lorem ipsum") * _count(max, "lorem ipsum") * 12, "lorem ipsum")
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


# --- the sandbox ---------------------------------------------------------------------------------


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
        return fits(super().call_binop(context, operator, left, right), f"the result of {operator}")

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
            fits(value, "an argument")
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
