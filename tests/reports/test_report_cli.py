"""`recovery report governance|commissioner|inspector` through the CLI app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from recovery.cli.reports import report_app
from tests.reports import html as H
from tests.reports.conftest import Built

runner = CliRunner()


def invoke(*args: Any) -> Any:
    return runner.invoke(report_app, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("kind", ["governance", "commissioner", "inspector"])
def test_every_pack_in_every_format(seed: Built, tmp_path: Path, kind: str) -> None:
    for fmt in ("html", "md", "pdf"):
        out = tmp_path / f"{kind}.{fmt}"
        result = invoke(kind, "--as-of", "2026-12-10", "--format", fmt, "--out", out, "--json")
        assert result.exit_code == 0, result.stderr
        data = json.loads(result.stdout)
        assert data == {"pack": kind, "format": fmt, "out": str(out), "as_of": "2026-12-10",
                        "location": None, "actions": 3, "high": 3,
                        "bytes": out.stat().st_size}
    page = (tmp_path / f"{kind}.html").read_text("utf-8")
    assert page.startswith("<!doctype html>")
    # self-contained: no stylesheet, script, image or font is fetched from anywhere
    for fetch in ('<link', '<script', 'src="http', "url(http", "@import"):
        assert fetch not in page.lower()
    assert (tmp_path / f"{kind}.pdf").read_bytes().startswith(b"%PDF-")
    assert (tmp_path / f"{kind}.md").read_text("utf-8").startswith("# ")


def test_format_from_the_file_name_and_a_location(seed: Built, tmp_path: Path) -> None:
    out = tmp_path / "elm.md"
    result = invoke("governance", "--out", out, "--location", "ELM", "--as-of", "2026-12-10")
    assert result.exit_code == 0, result.stderr
    assert "written to" in result.stdout
    text = out.read_text("utf-8")
    assert "ELM-STF-001" in text and "ROSE-SG-001" not in text and "Elm Court only" in text
    html_out = tmp_path / "elm.html"
    assert invoke("commissioner", "--out", html_out, "--location", "Elm Court").exit_code == 0
    assert H.attribute_values(html_out.read_text("utf-8"), "article", "data-ref") == \
        ["ELM-STF-001"]


def test_bad_input_exits_2_naming_the_field(seed: Built, tmp_path: Path) -> None:
    cases = [
        (["governance", "--out", tmp_path / "x.docx"], "format"),
        (["governance", "--out", tmp_path / "x.html", "--format", "docx"], "format"),
        (["governance", "--out", tmp_path / "x.html", "--as-of", "31/02/2026"], "as_of"),
        (["inspector", "--out", tmp_path / "x.html", "--location", "Nowhere"], "location"),
        (["commissioner", "--out", tmp_path / "no" / "x.html"], "out"),
        (["commissioner", "--out", tmp_path], "out"),
    ]
    for args, field in cases:
        result = invoke(*args, "--json")
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert json.loads(result.stderr)["field"] == field, args
        human = invoke(*args)
        assert human.exit_code == 2 and human.stderr.startswith(f"error {field}:"), args
