"""The one rule for single-line text (titles, names, measures, location names and codes):
one line, no control characters. A title with a line break could start a row or a
heading of its own on a Markdown surface, and a control character can hide text in a
terminal or break an email header, so both are refused where the text comes in."""

from __future__ import annotations

import re
import unicodedata

#: Line and paragraph separators are not control characters but do break lines.
_BREAKS = {"\u2028", "\u2029", "\u0085"}
#: A location code: used in action references (ROSE-SG-001).
_CODE = re.compile(r"[A-Za-z0-9]{1,12}")


def single_line(value: str, limit: int) -> str:
    """`value` trimmed, if it is one line of at most `limit` characters."""
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    for char in value:
        if char in _BREAKS or char in "\r\n":
            raise ValueError("must be one line: no line breaks")
        if unicodedata.category(char) in ("Cc", "Cf") and char not in "\u200d":
            raise ValueError(f"must not contain control characters (found U+{ord(char):04X})")
    if len(value) > limit:
        raise ValueError(f"must be at most {limit} characters")
    return value


def location_code(value: str) -> str:
    """A location code: 1 to 12 letters or digits."""
    value = value.strip()
    if not _CODE.fullmatch(value):
        raise ValueError("must be 1 to 12 letters or digits")
    return value
