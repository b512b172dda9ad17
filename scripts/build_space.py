#!/usr/bin/env python
"""Assemble the Hugging Face Space for the web app in one self-contained folder.

    python scripts/build_space.py OUT [--overwrite]

OUT gets what the Space repository holds:

* ``app.py``, ``README.md`` (the Space card: its YAML header says ``sdk: gradio``, the Gradio
  version, ``app_file: app.py`` and the model repo) and ``requirements.txt`` (CPU torch pinned
  to ``torch==2.13.0``; ``gradio[mcp]`` at the card's Gradio version, for the app's MCP
  server), copied from ``app/``;
* ``cleanvision/``, the package beside ``app.py`` (the PyPI project called ``cleanvision`` is
  another library, so the Space does not install it), **without** ``cleanvision/weights``: on
  the Space (``SPACE_ID`` is set) the app loads the model from the Hub repo ``HUB_REPO`` of
  ``app.py`` or from ``$CLEANVISION_MODEL``, through the Hub cache.

Upload it with ``hf upload --repo-type space USER/NAME OUT .``. The folder is checked before
this script returns: the card parses and names the files that are there, torch is pinned and
no weights or caches were copied, and the MCP extra is pinned at the card's Gradio version.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP_DIR = ROOT / "app"
PACKAGE = ROOT / "cleanvision"
SPACE_FILES = ("app.py", "README.md", "requirements.txt")
TORCH_PIN = "torch==2.13.0"


def _ignore(folder: str, names: list[str]) -> set[str]:
    """Leave out bytecode caches, and the shipped weights (only at the package's top)."""
    skip = {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".pyo"))}
    if Path(folder).resolve() == PACKAGE.resolve():
        skip.add("weights")
    return skip


def build(out: str | Path, overwrite: bool = False) -> list[Path]:
    """Write the Space folder ``out``; return the files in it (relative paths, sorted)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise SystemExit(f"build_space: {out} is not empty (pass --overwrite to replace it)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in SPACE_FILES:
        shutil.copy2(APP_DIR / name, out / name)
    shutil.copytree(PACKAGE, out / "cleanvision", ignore=_ignore)
    check(out)
    return sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())


def check(out: Path) -> None:
    """The folder is a Space: the card's header is valid and points at files that exist."""
    from huggingface_hub import SpaceCard

    card = SpaceCard.load(out / "README.md")
    meta = card.data.to_dict()
    problems = []
    if meta.get("sdk") != "gradio":
        problems.append(f"README.md: sdk is {meta.get('sdk')!r}, not 'gradio'")
    if not meta.get("sdk_version"):
        problems.append("README.md: no sdk_version")
    if not (out / str(meta.get("app_file", ""))).is_file():
        problems.append(f"README.md: app_file {meta.get('app_file')!r} is not in the folder")
    requirements = [line.strip() for line in (out / "requirements.txt").read_text().splitlines()]
    if TORCH_PIN not in requirements:
        problems.append(f"requirements.txt: {TORCH_PIN} is not pinned")
    mcp_pin = f"gradio[mcp]=={meta.get('sdk_version')}"  # the Space installs gradio without extras
    if mcp_pin not in requirements:
        problems.append(f"requirements.txt: {mcp_pin} is not pinned (the app's MCP server needs it)")
    if (out / "cleanvision" / "weights").exists():
        problems.append("cleanvision/weights was copied: the Space takes the weights from the Hub")
    if not (out / "cleanvision" / "__init__.py").is_file():
        problems.append("cleanvision/__init__.py is missing")
    if problems:
        raise SystemExit("build_space: " + "; ".join(problems))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", metavar="OUT", help="folder to write (created; must be empty)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it is not empty")
    args = parser.parse_args(argv)
    files = build(args.out, args.overwrite)
    size = sum((Path(args.out) / f).stat().st_size for f in files)
    print(f"{args.out}: {len(files)} files, {size / 1024:.0f} KiB (app.py, README.md, requirements.txt, "
          f"cleanvision/ without weights)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
