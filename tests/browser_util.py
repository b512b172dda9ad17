"""Serving the web app in-process and driving it with headless Chromium (Playwright).

Shared by tests/test_app.py, tests/test_browser.py and scripts/app_screenshot.py. The browser
is Debian's ``chromium`` package (Playwright's own browser download needs the internet), run
with a fresh profile folder; requests that leave the loopback server are blocked so the page
never waits on the network.
"""
from __future__ import annotations

import contextlib
import importlib.util
import socket
import sys
import tempfile
from pathlib import Path
from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[1]
APP_FILE = ROOT / "app" / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 900}
#: A phone held upright (iPhone 12-15: 390 CSS px wide).
PHONE_VIEWPORT = {"width": 390, "height": 844}


def load_app():
    """Import app/app.py (it is a script, not a package module) once."""
    if "cleanvision_app" not in sys.modules:
        spec = importlib.util.spec_from_file_location("cleanvision_app", APP_FILE)
        module = importlib.util.module_from_spec(spec)
        sys.modules["cleanvision_app"] = module
        spec.loader.exec_module(module)
    return sys.modules["cleanvision_app"]


def save_noise_map_model(folder: str | Path) -> Path:
    """Save a small noise-map model (FFDNet-style: it is told the noise level) with random weights
    to ``folder`` and return it. Random, not fresh: a fresh DnCNN is the identity and ignores
    its map, so neither the level nor the estimate would change anything."""
    import torch

    from cleanvision import DnCNN

    torch.manual_seed(0)
    model = DnCNN(channels=3, depth=5, width=16, pixel_unshuffle=2, noise_map=1, estimator_depth=3,
                  estimator_width=8)
    torch.nn.init.normal_(model.body[-1].weight, std=0.05)
    torch.nn.init.normal_(model.body[0].weight[:, -1], std=0.5)  # the map's input weights
    model.eval().save_pretrained(folder)
    return Path(folder)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save_blind_model(folder: str | Path) -> Path:
    """Save a small blind model (it takes no noise level) with random weights to ``folder`` and
    return it: what the app, CLI and API do with a model that finds the noise level itself."""
    import torch

    from cleanvision import DnCNN

    torch.manual_seed(0)
    model = DnCNN(channels=3, depth=5, width=16, pixel_unshuffle=2)
    torch.nn.init.normal_(model.body[-1].weight, std=0.05)
    model.eval().save_pretrained(folder)
    return Path(folder)


@contextlib.contextmanager
def serve_app(denoiser=None) -> Iterator[tuple[object, str]]:
    """Start the app on 127.0.0.1 (a free port) in this process; yield (app module, url)."""
    app = load_app()
    den = denoiser or app.load_denoiser()
    demo = app.build_demo(den)
    _, url, _ = app.launch(demo, "127.0.0.1", free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield app, url
    finally:
        demo.close()


def require_chromium() -> Path:
    """Chromium is part of the test environment (.ci/run installs it): missing is a failure."""
    if not CHROMIUM.is_file():
        raise AssertionError(f"{CHROMIUM} is missing: the browser test needs Debian's chromium package "
                             "(apt-get install -y chromium; scripts/test.sh installs it)")
    return CHROMIUM


@contextlib.contextmanager
def chromium_page(viewport: dict | None = None) -> Iterator[object]:
    """A page in headless Chromium with a fresh profile, limited to loopback requests."""
    from playwright.sync_api import sync_playwright

    exe = require_chromium()
    with tempfile.TemporaryDirectory(prefix="cleanvision-chromium-") as profile, sync_playwright() as pw:
        # launch_persistent_context passes the fresh folder as --user-data-dir.
        context = pw.chromium.launch_persistent_context(profile, executable_path=str(exe), headless=True,
                                                        args=CHROMIUM_ARGS, viewport=viewport or VIEWPORT)
        try:
            context.route("**/*", lambda route: route.continue_()
                          if route.request.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                          else route.abort())
            page = context.pages[0] if context.pages else context.new_page()
            yield page
        finally:
            context.close()


def restore_in_browser(page, url: str, image: str | Path, screenshot: str | Path,
                       timeout_s: float = 120) -> dict:
    """Open the page, upload ``image`` under "Restore my photo", press Restore, wait for the
    result, save a full-page screenshot; return what the page shows (status, download name)."""
    ms = timeout_s * 1000
    page.set_default_timeout(ms)
    page.goto(url, wait_until="domcontentloaded")
    page.locator("#restore-input input[type=file]").set_input_files(str(image))
    page.locator("#restore-input img").first.wait_for(state="visible")  # the upload's preview
    page.locator("#restore-btn").click()
    page.wait_for_function("""() => {
        const imgs = [...document.querySelectorAll('#restore-output img')];
        return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
    }""", timeout=ms)
    page.locator("#restore-status").get_by_text("Restored").wait_for(state="visible")
    page.wait_for_timeout(500)  # let the slider settle before the picture
    Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot), full_page=True)
    return {
        "status": page.locator("#restore-status").inner_text(),
        "result_images": page.locator("#restore-output img").count(),
        "download": "".join(page.locator("#restore-download").inner_text().split()),
    }


_LABEL_PROBLEMS_JS = """() => {
  const visible = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0 && el.checkVisibility(); };
  const hit = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const problems = [];
  for (const label of document.querySelectorAll('label')) {
    if (!visible(label) || !label.innerText.trim()) continue;
    const text = label.innerText.trim().split('\\n')[0];
    const r = label.getBoundingClientRect();
    const block = label.closest('.block') || document.body;
    if (label.scrollWidth > label.clientWidth + 1 || r.right > block.getBoundingClientRect().right + 1
        || r.right > window.innerWidth)
      problems.push(`label "${text}" is cut off (${label.scrollWidth} px of text in ${label.clientWidth} px)`);
    for (const b of block.querySelectorAll('button')) {
      const q = b.getBoundingClientRect();
      if (q.width > 64 || q.height > 64) continue;  // icon buttons only, not the upload area under the label
      if (visible(b) && !label.contains(b) && !b.contains(label) && hit(r, q))
        problems.push(`label "${text}" lies under the button "${b.getAttribute('aria-label') || b.innerText}"`);
    }
  }
  return problems;
}"""


def label_problems(page) -> list[str]:
    """Visible labels that are cut off or lie under a component's icon buttons (as a long
    label did on a phone), one line each; empty when every label can be read."""
    return page.evaluate(_LABEL_PROBLEMS_JS)
