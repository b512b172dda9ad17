"""What ``cleanvision eval`` offers: its conditions, methods and defaults.

Kept free of heavy imports (no numpy, OpenCV, torch) so that ``cleanvision eval --help`` is
instant; :mod:`~cleanvision.bench.sets` and :mod:`~cleanvision.bench.methods`, which act on
these names, import them from here.
"""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The frozen benchmark generator (beside the checkout, in ../shared/bench).
DEFAULT_MAKE_BENCH = REPO_ROOT.parent / "shared" / "bench" / "make_bench.py"
#: The seven conditions of the seed's damage (SPEC.md), built by default.
FROZEN_CONDITIONS = ("gauss25", "gauss50", "sp10", "speckle", "scribble", "all4", "mixed")
#: SPEC.md's "Extended conditions": damage that real photos carry (built only when named).
EXTENDED_CONDITIONS = ("luma25", "jpeg10", "jpeg30", "gauss15_jpeg50")
#: Not SPEC.md's: the clean photo as input (named, or in ``all``); scored against itself.
UNDAMAGED = "undamaged"
PAPER_SIGMAS = (15, 25, 50)
#: Paper-protocol centre crop per set (FFDNet's Kodak24 protocol); 0 = whole image.
AUTO_PAPER_CROP = {"Kodak24": 500}

ALL_METHODS = ("model", "noisy", "median3", "median5", "gblur", "nlm", "nlm5", "bm3d")
DEFAULT_BM3D_LIMIT = 3
