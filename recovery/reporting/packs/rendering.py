"""Rendering a built pack: HTML and Markdown through the one Jinja environment, PDF via
WeasyPrint (inline SVG charts turned into images), and `write_report` for the CLI.
"""

from __future__ import annotations

import base64
import re
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from models.people import PROVIDER_LEVEL_ROLES
from recovery.adapters import mail
from recovery.reporting.packs.builders import (
    BUILDERS,
    build_pack,
)
from recovery.reporting.packs.views import (
    CHART_CHOICES,
    FORMATS,
    PACKS,
    Pack,
)
from recovery.reporting.snapshot import (
    GovernanceSnapshot,
)


def render_html(pack: Pack) -> str:
    return mail.environment().get_template(f"reports/{pack.meta.kind}.html").render(
        p=pack, provider_roles=[r.label for r in PROVIDER_LEVEL_ROLES])


def render_markdown(pack: Pack) -> str:
    return mail.environment().get_template(f"reports/{pack.meta.kind}.md").render(
        p=pack, provider_roles=[r.label for r in PROVIDER_LEVEL_ROLES])


_INLINE_SVG = re.compile(r"<svg\b.*?</svg>", re.S)


def _svg_as_image(match: re.Match[str]) -> str:
    svg = match.group(0)
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f'<img class="chart" alt="chart" src="data:image/svg+xml;base64,{data}">'


def print_document(html: str) -> Any:
    """The print-ready HTML laid out by WeasyPrint (pages, with the ids on each). Its own
    SVG renderer draws each chart (as an image in a data: URI, which is quicker than laying
    inline SVG out as HTML); the HTML is self-contained, so nothing is fetched."""
    from weasyprint import HTML

    printable = _INLINE_SVG.sub(_svg_as_image, html)
    return HTML(string=printable, base_url=str(mail.TEMPLATES)).render()


def render_pdf(html: str) -> bytes:
    return bytes(print_document(html).write_pdf())


def render(pack: Pack, fmt: str) -> bytes:
    from models.errors import InvalidInput

    if fmt == "html":
        return render_html(pack).encode("utf-8")
    if fmt == "md":
        return render_markdown(pack).encode("utf-8")
    if fmt == "pdf":
        return render_pdf(render_html(pack))
    raise InvalidInput("format", f"'{fmt}' is not a report format ({', '.join(FORMATS)})")


class ReportResult(BaseModel):
    pack: str
    format: str
    out: str
    as_of: date
    location: str | None
    actions: int
    high: int
    bytes: int


def write_report(kind: str, fmt: str, out: Path, *, as_of: date,
                 location: str | None = None, charts: str = "auto",
                 snapshot: GovernanceSnapshot | None = None) -> ReportResult:
    """Build, render and write one pack (the CLI's `recovery report ...`; the weekly cycle
    passes the governance snapshot it has built)."""
    from models.errors import InvalidInput
    from recovery.adapters import db

    if kind not in BUILDERS:
        raise InvalidInput("pack", f"'{kind}' is not a pack ({', '.join(PACKS)})")
    if fmt not in FORMATS:
        raise InvalidInput("format", f"'{fmt}' is not a report format ({', '.join(FORMATS)})")
    if charts not in CHART_CHOICES:
        raise InvalidInput("charts", f"'{charts}' is not one of {', '.join(CHART_CHOICES)}")
    if out.exists() and out.is_dir():
        raise InvalidInput("out", f"{out} is a directory; give a file name")
    if not out.parent.exists():
        raise InvalidInput("out", f"the folder {out.parent} does not exist")
    with db.reading() as session:  # a pack only reads: other writers need not wait for it
        pack = build_pack(session, kind, as_of=as_of, location=location,
                          charts_for="none" if fmt == "md" else charts, snapshot=snapshot)
    try:
        if fmt == "html":  # streamed to the file: a provider's pack is tens of MB
            size = _write_html(pack, out)
        else:
            data = render(pack, fmt)
            out.write_bytes(data)
            size = len(data)
    except OSError as exc:
        raise InvalidInput("out", f"cannot write {out}: {exc.strerror}") from None
    return ReportResult(pack=kind, format=fmt, out=str(out), as_of=as_of,
                        location=pack.meta.location, actions=pack.counts.actions,
                        high=pack.counts.high, bytes=size)


def _write_html(pack: Pack, out: Path) -> int:
    """The HTML written as the template produces it, without holding the whole page (and
    its UTF-8 copy) in memory; the same bytes as `render_html(pack).encode()`."""
    stream = mail.environment().get_template(f"reports/{pack.meta.kind}.html").generate(
        p=pack, provider_roles=[r.label for r in PROVIDER_LEVEL_ROLES])
    size = 0
    with out.open("wb") as fh:
        for piece in stream:
            data = piece.encode("utf-8")
            fh.write(data)
            size += len(data)
    return size
