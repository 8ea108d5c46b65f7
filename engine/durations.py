"""Durations as workflows write them: ``-30m``, ``2h``, ``1d``, ``1w``, ``45s``; a bare integer is minutes.

``ms`` is accepted too, for settings such as ``poll_interval = "200ms"``.
"""

from __future__ import annotations

import datetime as dt
import re

_PATTERN = re.compile(r"^([+-]?)(\d+)(ms|[smhdw]?)$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_LARGEST_FIRST = sorted(((u, int(s)) for u, s in _SECONDS.items() if s >= 1), key=lambda item: -item[1])


def parse_duration(value: object) -> dt.timedelta:
    """Parse a duration; raise ``ValueError`` saying what is accepted."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    text = str(value).strip().replace(" ", "") if isinstance(value, (int, str)) else None
    match = _PATTERN.match(text) if text is not None else None
    if not match:
        raise ValueError(
            f"{value!r} is not a duration: use an integer with s, m, h, d or w "
            "(e.g. -30m, 2h, 1d); a bare integer means minutes"
        )
    sign, amount, unit = match.groups()
    if unit == "ms":
        milliseconds = int(amount)
        return dt.timedelta(milliseconds=-milliseconds if sign == "-" else milliseconds)
    seconds = int(amount) * _SECONDS[unit or "m"]
    return dt.timedelta(seconds=-seconds if sign == "-" else seconds)


def format_duration(value: dt.timedelta) -> str:
    """The shortest canonical spelling: ``-30m``, ``2h``, ``1d``, ``0``."""
    milliseconds = round(value.total_seconds() * 1000)
    if milliseconds == 0:
        return "0"
    sign = "-" if milliseconds < 0 else ""
    if milliseconds % 1000:
        return f"{sign}{abs(milliseconds)}ms"
    seconds = milliseconds // 1000
    for unit, size in _LARGEST_FIRST:
        if abs(seconds) % size == 0:
            return f"{sign}{abs(seconds) // size}{unit}"
    raise AssertionError("unreachable: every whole number of seconds divides by 1")
