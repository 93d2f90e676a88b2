"""What people type reaches every surface as inert text. The one Jinja environment escapes
each value by the surface its template renders to, so no template can forget:

- `.html`/`.svg`: Jinja's HTML autoescape.
- `.md` (Prefect form descriptions, artifacts, the Markdown packs): `markdown_text`, no
  images, links, HTML, emphasis or line structure of its own survive.
- `.txt` (email text parts and subjects): `one_line`, a value stays on its line.

A value meant as Markdown (a macro's output, the `code` filter's code span) is `Markup`
and passes as it is. Markdown built outside a template (table artifact cells) goes
through `markdown_text` itself."""

from __future__ import annotations

import re
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

_MD_ESCAPES = str.maketrans({
    "&": "\\&", "<": "\\<", ">": "\\>", "\\": "\\\\", "`": "\\`", "*": "\\*",
    "_": "\\_", "[": "\\[", "]": "\\]", "|": "\\|", "#": "\\#", "~": "\\~", "!": "\\!",
    "@": "\\@",
})
#: What a Markdown renderer turns into a link without brackets (GFM's autolinks: bare
#: addresses and emails): the `:` or `.` is backslash-escaped (like `@`), which renders
#: the same and breaks the pattern. Never entities: Prefect's renderer shows them as typed.
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp|javascript|data|vbscript|file|mailto):|\b(www)\.")
#: What makes a value that starts a line a list item or a heading underline. The marker
#: itself is escaped: after an ordered list's digits, the `.` or `)` (a backslash before
#: a digit is no escape in Markdown and would show).
_LINE_START = re.compile(r"^(\d*)([-+=.)])")


def one_line(value: object) -> str:
    """A value on one line: every run of whitespace (line breaks, tabs) one space."""
    return "" if value is None else " ".join(str(value).split())


def markdown_text(value: object) -> str:
    """A value as inert Markdown text, on one line: rendered, it reads as typed and is
    nothing but text."""
    text = one_line(value).translate(_MD_ESCAPES)
    text = _AUTOLINK.sub(lambda m: f"{m[1]}\\:" if m[1] else f"{m[2]}\\.", text)
    return _LINE_START.sub(r"\1\\\2", text)


def code(value: object) -> Markup:
    """A value as a Markdown code span (a fence longer than any backtick run in it)."""
    text = one_line(value)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return Markup(f"{fence} {text} {fence}" if text else "")


@pass_context
def finalize(context: Context, value: Any) -> Any:
    """Every `{{ value }}` as the template's surface needs it (see the module docstring)."""
    if isinstance(value, Markup):
        return value
    name = context.name or ""
    if name.endswith(".md"):
        return Markup(markdown_text(value))
    if name.endswith(".txt"):
        return one_line(value)
    return value
