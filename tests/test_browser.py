"""The web app in a real browser: headless Chromium uploads a photo, presses Restore, sees the result.

The screenshot goes to $CLEANVISION_SCREENSHOT if set, else the test's tmp_path.
"""
from __future__ import annotations

import os
from pathlib import Path

from browser_util import PHONE_VIEWPORT, chromium_page, label_problems, require_chromium, restore_in_browser, serve_app


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
