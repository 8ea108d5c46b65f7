"""Phone numbers as the SMS providers want them: E.164, checked before any request is made."""

from __future__ import annotations

import re

from channels.base import PermanentSendError

# "+", a country code that does not start with 0, and at most 15 digits in all.
_E164 = re.compile(r"\+[1-9]\d{6,14}")


def check_e164(number: str) -> str:
    """Return ``number`` if it is in E.164 form, else raise PermanentSendError."""
    if not isinstance(number, str) or not _E164.fullmatch(number):
        raise PermanentSendError(f"not an E.164 phone number: {number!r}")
    return number
