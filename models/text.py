"""The rules for text people type, applied where it comes in. Single-line text (titles,
names, measures, location names and codes): one line, no control characters. A title
with a line break could start a row or a heading of its own on a Markdown surface, and
a control character can hide text in a terminal or break an email header. Free text
(the baseline issue, controls, steps, risks): line breaks and tabs allowed, no other
control characters."""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

from models.errors import InvalidInput

#: Line and paragraph separators are not control characters but do break lines.
_BREAKS = {"\u2028", "\u2029", "\u0085"}
#: A location code: used in action references (ROSE-SG-001).
_CODE = re.compile(r"[A-Za-z0-9]{1,12}")


def single_line(value: str, limit: int) -> str:
    """`value` trimmed, if it is one line of at most `limit` characters."""
    return _checked(value, limit, one_line=True)


def free_text(value: str, limit: int) -> str:
    """`value` trimmed, if it is at most `limit` characters with no control characters
    other than line breaks and tabs (a surface that shows it on one line joins them)."""
    return _checked(value, limit, one_line=False)


def text_field(field: str, value: str, limit: int, *, one_line: bool = False) -> str:
    """The same rules for text that comes in outside a model (a command's option): a
    refusal is an `InvalidInput` naming `field`."""
    try:
        return _checked(value, limit, one_line=one_line)
    except ValueError as error:
        raise InvalidInput(field, str(error)) from None


def _checked(value: str, limit: int, *, one_line: bool) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    # A printable string (str.isprintable) holds no line break, tab or control character, so
    # only other strings are walked: this check runs on every plan field of every action a
    # daily cycle touches (benchmarks/notes/daily.md, round 8).
    for char in ("" if value.isprintable() else value):
        if char in _BREAKS or char in "\r\n":
            if one_line:
                raise ValueError("must be one line: no line breaks")
        elif char == "\t" and not one_line:
            continue
        elif unicodedata.category(char) in ("Cc", "Cf") and char != "\u200d":
            raise ValueError(f"must not contain control characters (found U+{ord(char):04X})")
    if len(value) > limit:
        raise ValueError(f"must be at most {limit} characters")
    return value


#: One item of a plan's free text (a control, a risk, a step, a trigger): an error
#: names the item (`interim_controls.0`).
FreeText = Annotated[str, AfterValidator(lambda value: free_text(value, 1000))]


def location_code(value: str) -> str:
    """A location code: 1 to 12 letters or digits."""
    value = value.strip()
    if not _CODE.fullmatch(value):
        raise ValueError("must be 1 to 12 letters or digits")
    return value
