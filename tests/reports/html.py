"""Reading the rendered packs in tests: elements by id or attribute, and their text."""

from __future__ import annotations

import html as html_lib
import re


def element(doc: str, element_id: str) -> str:
    """The outer HTML of the element with this id (nesting of its own tag counted)."""
    match = re.search(rf'<(\w+)\b[^>]*\bid="{re.escape(element_id)}"', doc)
    assert match, f"no element with id {element_id!r}"
    return _outer(doc, match.start(), match.group(1))


def elements(doc: str, tag: str, attribute: str, value: str | None = None) -> list[str]:
    """Every <tag ... attribute="value"> element (any value when value is None)."""
    wanted = re.escape(value) if value is not None else '[^"]*'
    return [_outer(doc, m.start(), tag) for m in
            re.finditer(rf'<{tag}\b[^>]*\b{attribute}="{wanted}"', doc)]


def attribute_values(doc: str, tag: str, attribute: str) -> list[str]:
    return re.findall(rf'<{tag}\b[^>]*\b{attribute}="([^"]*)"', doc)


def _outer(doc: str, start: int, tag: str) -> str:
    depth = 0
    for m in re.finditer(rf"<(/?){tag}\b[^>]*>", doc[start:]):
        depth += -1 if m.group(1) else 1
        if depth == 0:
            return doc[start:start + m.end()]
    raise AssertionError(f"<{tag}> at {start} is not closed")


def text(fragment: str) -> str:
    """Visible text: tags (and inline SVG) dropped, entities decoded, spaces collapsed."""
    fragment = re.sub(r"<svg\b.*?</svg>", " ", fragment, flags=re.S)
    fragment = re.sub(r"<style\b.*?</style>", " ", fragment, flags=re.S)
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())
