"""The governance pack's HTML in Debian's chromium (headless), to PNG, so its look can be
reviewed: saved under the test's tmp dir (and copied to docs/screenshots/ with
RECOVERY_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.reports import scenario
from tests.reports.conftest import Built, pack_and_html

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-quic"]
SCREENSHOT = scenario.REPO_ROOT / "docs" / "screenshots" / "governance-pack.png"
MAX_BYTES = 500 * 1024


@pytest.mark.browser
def test_governance_pack_screenshot(seed: Built, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"Debian's chromium is required at {CHROMIUM} (apt-get install -y "
                    f"chromium); the browser tests never download a browser", pytrace=False)
    from playwright.sync_api import sync_playwright

    _, doc = pack_and_html(seed, "governance")
    page_file = tmp_path / "governance.html"
    page_file.write_text(doc, encoding="utf-8")
    png = tmp_path / "governance-pack.png"
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1500},
                                    device_scale_factor=1)
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri(), wait_until="load")
            # laid out as on paper: the A4 sheet holds every table, nothing spills sideways
            assert page.evaluate("document.documentElement.scrollWidth") <= 1000
            widths = page.evaluate(
                "[...document.querySelectorAll('.sheet table')].map(t => "
                "t.getBoundingClientRect().right - t.closest('.sheet')"
                ".getBoundingClientRect().right)")
            assert widths and max(widths) <= 0, widths
            charts = page.locator("svg.chart")
            assert charts.count() == 4  # the matrix and one per high-risk action
            box = charts.nth(1).bounding_box()
            assert box is not None and box["width"] > 500 and box["height"] > 150
            assert page.locator("#high-risk article.action").count() == 3
            page.screenshot(path=str(png), full_page=False)
        finally:
            browser.close()
    assert requests == [page_file.as_uri()]  # self-contained: nothing else was fetched
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) < MAX_BYTES, len(data)
    from PIL import Image

    with Image.open(png) as image:
        assert image.size == (1000, 1500)
        colours = {colour for _, colour in image.convert("RGB").getcolors(1_000_000) or []}
    # the matrix shows red, amber and green cells (the seed's three ratings)
    for rgb in ((0xD4, 0x35, 0x1C), (0xF4, 0x77, 0x38), (0x00, 0x70, 0x3C)):
        assert rgb in colours, rgb
    if os.environ.get("RECOVERY_UPDATE_SCREENSHOTS") == "1":  # refresh the one in docs/
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, SCREENSHOT)
