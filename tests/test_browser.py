"""The web app in a real browser: headless Chromium uploads a photo, presses Restore, sees the result.

The screenshot goes to $CLEANVISION_SCREENSHOT if set, else the test's tmp_path.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from browser_util import (PHONE_VIEWPORT, VIEWPORT, chromium_page, label_problems, load_app, require_chromium,
                          restore_in_browser, save_blind_model, save_noise_map_model, serve_app)


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


_INPUT_SHOWN_JS = """() => {
    const img = document.querySelector('#restore-input img');
    return img !== null && img.complete && img.naturalWidth > 0 && img.src.endsWith('.png');
}"""


def test_a_heic_upload_is_shown_and_restored(tmp_path):
    """Chromium cannot show a HEIC (what iPhones save): the page shows the uploaded photo anyway
    (a PNG of its pixels), and restores it under the photo's own name."""
    from PIL import Image
    from skimage import data

    from cleanvision.noise import add_gaussian_noise

    require_chromium()
    heic = tmp_path / "IMG_0001.HEIC"
    Image.fromarray(add_gaussian_noise(data.astronaut()[100:340, 80:400], 20, rng=0)).save(heic, quality=90)
    with serve_app() as (_, url), chromium_page() as page:
        page.set_default_timeout(60_000)
        page.goto(url, wait_until="domcontentloaded")
        # the type a desktop browser gives an iPhone's IMG_0001.HEIC (Playwright's guess from the
        # upper-case suffix is none, which the page's "image/*" filter refuses)
        page.locator("#restore-input input[type=file]").set_input_files(
            {"name": heic.name, "mimeType": "image/heic", "buffer": heic.read_bytes()})
        page.wait_for_function(_INPUT_SHOWN_JS, polling=250)
        width = page.evaluate("() => document.querySelector('#restore-input img').naturalWidth")
        page.locator("#restore-btn").click()
        page.locator("#restore-status").get_by_text("Restored").wait_for(state="visible")
        status = page.locator("#restore-status").inner_text()
        download = "".join(page.locator("#restore-download").inner_text().split())
    assert width == 320 and "320×240" in status, (width, status)
    assert "IMG_0001_restored.png" in download, download


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


TABS = {"restore": "Restore my photo", "synthetic": "Try it with synthetic noise"}


def _noise_level_shown(page) -> dict[str, bool]:
    """Which parts of the Noise level control each tab shows (each tab opened in turn; the
    restore tab is left open)."""
    shown = {}
    for tab in ("synthetic", "restore"):
        page.get_by_role("tab", name=TABS[tab]).click()
        page.locator(f"#{tab}-btn").wait_for(state="visible")
        for part in ("auto", "level", "note"):
            shown[f"{tab}-{part}"] = page.locator(f"#{tab}-noise-{part}").is_visible()
    return shown


def test_noise_level_control_follows_the_model(tmp_path):
    """A noise-map model gets the Noise level control: Auto on, the slider greyed out until Auto is
    unticked; a restore on Auto shows the estimate in the status and on the slider, and a level
    set on the slider is the one used. A blind model shows a note instead."""
    require_chromium()
    app = load_app()
    den = app.load_denoiser(str(save_noise_map_model(tmp_path / "model")))
    slider = "#restore-noise-level input[type=range]"
    with serve_app(den) as (app, url), chromium_page(PHONE_VIEWPORT) as page:
        seen = restore_in_browser(page, url, app.OUT_DIR / "examples" / "coffee_noisy.png", tmp_path / "auto.png")
        shown_map = _noise_level_shown(page)
        auto_status, problems = seen["status"], label_problems(page)
        shown_value = page.locator("#restore-noise-level input[type=number]").input_value()
        disabled_on_auto = page.locator(slider).is_disabled()
        page.locator("#restore-noise-auto input").uncheck()
        page.locator(slider + ":enabled").wait_for()
        number = page.locator("#restore-noise-level input[type=number]")
        number.fill("40")
        number.press("Enter")
        page.locator("#restore-btn").click()
        page.locator("#restore-status").get_by_text("noise level: σ 40, as set").wait_for(state="visible")
    match = re.search(r"noise level: auto, estimated σ ([0-9]+\.[0-9])", auto_status)
    assert match, auto_status
    assert float(shown_value) == float(match.group(1)), (shown_value, auto_status)  # the slider shows the estimate
    assert disabled_on_auto and problems == []
    assert all(shown_map[f"{tab}-{part}"] for tab in ("restore", "synthetic") for part in ("auto", "level")), shown_map
    assert not shown_map["restore-note"] and not shown_map["synthetic-note"], shown_map
    blind = app.load_denoiser(str(save_blind_model(tmp_path / "blind-model")))
    with serve_app(blind) as (_, url), chromium_page() as page:
        page.set_default_timeout(60_000)
        page.goto(url, wait_until="domcontentloaded")
        page.locator("#restore-noise-note").get_by_text("this model finds it in each photo itself").wait_for()
        shown_blind = _noise_level_shown(page)
    assert shown_blind == {"restore-auto": False, "restore-level": False, "restore-note": True,
                           "synthetic-auto": False, "synthetic-level": False, "synthetic-note": True}, shown_blind
