"""The web app in a real browser: headless Chromium uploads a photo, presses Restore, sees the result.

The screenshot goes to $CLEANVISION_SCREENSHOT if set, else the test's tmp_path.
"""
from __future__ import annotations

import os
from pathlib import Path

from browser_util import (PHONE_VIEWPORT, VIEWPORT, chromium_page, label_problems, require_chromium, restore_in_browser,
                          serve_app)


def test_restore_in_browser(tmp_path):
    require_chromium()  # fail (never skip) when the browser is missing
    shot = Path(os.environ.get("CLEANVISION_SCREENSHOT") or tmp_path / "app.png")
    with serve_app() as (app, url), chromium_page() as page:
        noisy = app.OUT_DIR / "examples" / "chelsea_noisy.png"  # written by build_demo
        seen = restore_in_browser(page, url, noisy, shot)
        assert label_problems(page) == []
    assert seen["result_images"] >= 1, "the before/after result image did not appear"
    assert "Restored" in seen["status"] and "451" in seen["status"], seen["status"]  # 451×300 chelsea
    assert "chelsea_noisy_restored.png" in seen["download"], seen["download"]
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_labels_fit_a_phone_screen(tmp_path):
    """Issue 11: at 390 px wide no label is cut off or hidden under the icons that appear once
    there is an image (upload, result), on either tab."""
    require_chromium()
    with serve_app() as (app, url), chromium_page(PHONE_VIEWPORT) as page:
        seen = restore_in_browser(page, url, app.OUT_DIR / "examples" / "coffee_noisy.png", tmp_path / "phone.png")
        assert seen["result_images"] >= 1
        problems = label_problems(page)
        page.get_by_role("tab", name="Try it with synthetic noise").click()
        page.locator("#synthetic-input input[type=file]").set_input_files(str(app.OUT_DIR / "examples" / "coffee.png"))
        page.locator("#synthetic-input img").first.wait_for(state="visible")
        problems += label_problems(page)
    assert problems == []


_BOXES_JS = """ids => Object.fromEntries(ids.map(id => {
  const r = document.getElementById(id).getBoundingClientRect();
  return [id, {left: r.left, top: r.top + window.scrollY, width: r.width, height: r.height}];
}))"""


def _boxes(page, *ids: str) -> dict[str, dict]:
    """Where each element (by elem_id) lies on the page, in CSS px from the page's top left."""
    return page.evaluate(_BOXES_JS, list(ids))


def _in_order(boxes: dict[str, dict]) -> bool:
    """Each element lies lower on the page than the one before it, and is shown."""
    tops = [b["top"] for b in boxes.values()]
    return all(b["height"] > 0 for b in boxes.values()) and all(a < b for a, b in zip(tops, tops[1:]))


def test_phone_shows_the_result_before_the_examples():
    """On a phone the restored result follows the input and its button directly, and the
    examples come after it, on both tabs; on a desktop the result stays beside the input."""
    require_chromium()
    restore_ids = ("restore-input", "restore-btn", "restore-output", "restore-examples")
    synthetic_ids = ("synthetic-input", "synthetic-btn", "synthetic-noisy", "synthetic-restored", "synthetic-examples")
    with serve_app() as (_, url), chromium_page(PHONE_VIEWPORT) as page:
        page.set_default_timeout(60_000)
        page.goto(url, wait_until="domcontentloaded")
        page.locator("#restore-examples").wait_for(state="visible")
        phone_restore = _boxes(page, *restore_ids)
        page.get_by_role("tab", name="Try it with synthetic noise").click()
        page.locator("#synthetic-examples").wait_for(state="visible")
        phone_synthetic = _boxes(page, *synthetic_ids)
        page.set_viewport_size(VIEWPORT)
        page.get_by_role("tab", name="Restore my photo").click()
        page.locator("#restore-examples").wait_for(state="visible")
        page.wait_for_timeout(300)  # the columns settle side by side
        desktop = _boxes(page, *restore_ids)
    assert _in_order(phone_restore), phone_restore
    assert _in_order(phone_synthetic), phone_synthetic
    assert desktop["restore-output"]["left"] > desktop["restore-input"]["left"] + desktop["restore-input"]["width"] - 1
    assert abs(desktop["restore-output"]["top"] - desktop["restore-input"]["top"]) < 2, desktop  # side by side
    assert desktop["restore-examples"]["top"] > desktop["restore-btn"]["top"], desktop


def test_page_refuses_a_seed_out_of_range():
    """Out-of-range numbers are refused on the page as through the API, with the valid range
    (the seed box is the one input a visitor can set outside it)."""
    require_chromium()
    with serve_app() as (_, url), chromium_page() as page:
        page.set_default_timeout(60_000)
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_role("tab", name="Try it with synthetic noise").click()
        page.locator("#synthetic-examples button").first.click()  # a clean example into the input
        page.locator("#synthetic-input img").first.wait_for(state="visible")
        page.locator("#synthetic-seed input").fill("-1")
        page.locator("#synthetic-btn").click()
        toast = page.get_by_text("seed must be a whole number in [0, 9223372036854775807], got -1.")
        toast.wait_for(state="visible")
        assert page.locator("#synthetic-restored img").count() == 0  # nothing was restored
