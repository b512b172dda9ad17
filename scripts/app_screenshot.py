#!/usr/bin/env python
"""Make the README's picture of the web app: docs/app_screenshot.png.

    python scripts/app_screenshot.py [--out docs/app_screenshot.png] [--image NOISY_IMAGE] [--model DIR_OR_REPO]

Serves app/app.py on loopback in this process, opens it in headless Chromium (Debian's
/usr/bin/chromium, driven by Playwright), uploads a noisy image under "Restore my photo"
(default: the app's damaged cat example), presses Restore and screenshots the page with the
result. The browser code is the same as the browser test's (tests/browser_util.py). The model
is the app's default (``--model`` as ``app.py --model``; a noise-map model shows the Noise
level control, on Auto, with the level it found after restoring).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser_util import chromium_page, load_app, restore_in_browser, serve_app  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "app_screenshot.png")
    parser.add_argument("--image", type=Path, default=None, help="noisy image to upload")
    parser.add_argument("--model", default=None, help="model folder or Hub repo id (default: as app.py)")
    args = parser.parse_args(argv)
    with serve_app(load_app().load_denoiser(args.model)) as (app, url), chromium_page() as page:
        image = args.image or app.OUT_DIR / "examples" / "chelsea_noisy.png"
        seen = restore_in_browser(page, url, image, args.out)
    print(f"{args.out}: {seen['status']}")


if __name__ == "__main__":
    main()
