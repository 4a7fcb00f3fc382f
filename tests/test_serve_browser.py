"""The web page in a real browser: Playwright drives Debian's Chromium against mtst serve on real uvicorn."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

from serve_helpers import running_server  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The README screenshot is rewritten only when asked (MTST_UPDATE_SCREENSHOTS=1), so a test run leaves the tree clean.
README_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "serve.png"
SENTENCES = ["Marie Curie was born in Warsaw and worked in Paris.", "Where is the Eiffel Tower located?"]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium; .ci/run installs it)"
)


@pytest.mark.real_model
def test_page_shows_entities_labels_and_heatmap(tmp_path):
    shot = README_SCREENSHOT if os.environ.get("MTST_UPDATE_SCREENSHOTS") == "1" else tmp_path / "serve.png"
    from mtst.serve.app import create_app
    from mtst.serve.backend import load_backend

    app = create_app(load_backend("default", device="cpu"))
    with running_server(app) as (url, _), sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/")
            page.wait_for_selector("#status-dot.ok")
            page.wait_for_selector(".tasks .task")  # tasks and labels read from /info
            assert page.locator(".tasks .task-head").count() == 3
            page.fill("#texts", "\n".join(SENTENCES))
            page.click("#run")
            page.wait_for_selector("mark.ent")
            marks = page.locator("mark.ent")
            labelled = {marks.nth(i).get_attribute("data-label") for i in range(marks.count())}
            assert "PER" in labelled
            assert "Marie Curie" in page.locator("mark.ent[data-label=PER]").first.inner_text()
            colour = page.eval_on_selector("mark.ent", "e => getComputedStyle(e).backgroundColor")
            assert colour not in ("rgba(0, 0, 0, 0)", "transparent"), colour  # the highlight shows
            labels = page.locator(".pred .task-label").all_inner_texts()
            assert "LOC" in labels  # the topic of "Where is the Eiffel Tower located?"
            assert page.locator(".heatmap td").count() == 4 and not page.locator("#error").is_visible()
            assert errors == []
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
