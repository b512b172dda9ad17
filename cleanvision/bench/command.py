"""The benchmark behind every published CleanVision number: PSNR / SSIM tables, baselines, figure.

    cleanvision eval --clean ../shared/data/CBSD68 --clean ../shared/data/Kodak24 --conditions all
    cleanvision eval --clean ../shared/data/real/PolyU --clean ../shared/data/real/CC15
    cleanvision eval --clean ../shared/data/BSD68 --clean ../shared/data/Set12 --conditions none
    cleanvision eval --clean ../shared/data/CBSD68 --methods noisy,median3,nlm --limit 20

For each clean set it evaluates, on the same images and noise:

* the **frozen benchmark** of ``../shared/bench`` (``SPEC.md``): the noisy PNGs that
  ``make_bench.py`` writes for the conditions ``gauss25 gauss50 sp10 speckle scribble all4
  mixed``. The noisy folder (default ``.bench/<set>``) is built by running ``make_bench.py``
  when it does not exist, and every noisy image is checked against the sha256 in its manifest;
  ``--conditions all`` adds SPEC.md's extended conditions ``luma25 jpeg10 jpeg30 gauss15_jpeg50``
  (damage real photos carry), tabled separately, and ``undamaged``: the clean photo itself as
  input, scored against itself (what a method changes on a photo that needs nothing; a blind
  model cannot tell, and what it changes there it changes around every scribble too);
* **real photos**: a folder of ``*_real`` / ``*_mean`` pairs (PolyU, CC15) is scored as it is,
  the noisy photo against its ground truth;
* the **paper protocol** of the DnCNN / FFDNet / DRUNet test scripts: float Gaussian noise,
  ``noisy = clean/255 + N(0, (σ/255)²)`` (RGB order, not clipped, not rounded), with
  ``np.random.seed(0)`` before each image, σ ∈ {15, 25, 50}; the restored image is clipped and
  rounded to uint8 before PSNR. Kodak24 uses 500×500 centre crops here (FFDNet's protocol,
  which its published Kodak24 numbers follow); other sets use whole images.

Methods: one or more models (``--model shipped`` = the weights inside the package, or any
``save_pretrained`` folder / Hub repo id), the noisy input itself, median 3×3 and 5×5, Gaussian
blur 5×5 σ = 1.2, OpenCV non-local means (``fastNlMeansDenoisingColored``, h = hColor = 10,
template 7, search 21; and h = 5 on real photos, whose noise is weak) and BM3D with the true σ (``bm3d`` package; Gaussian conditions only,
on the first ``--bm3d-limit`` images because it is slow). Median, blur and NLM take 8-bit
input, so they run on the frozen conditions, real and undamaged photos only; models, the noisy input and BM3D also run
the paper protocol. Published numbers are added as rows "quoted from paper".

Outputs in ``--out`` (default ``docs/bench/<set>``): ``results.json`` (per-image PSNR and
SSIM, means, seconds per megapixel, provenance; ``--update`` keeps the rows of methods not run
this time, so a retrained model is scored without rerunning BM3D), ``results.md`` (the table that
``scripts/update_tables.py`` puts into README.md and model_card.md) and ``figure.png``
(crops of clean / noisy / each method). Same inputs, same numbers: nothing is random except
through fixed seeds.

Metrics: see :mod:`cleanvision.bench.run` (SPEC.md's PSNR and SSIM, scikit-image as reference).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..options import AUTO_RULE, ENGINES
from .options import (ALL_METHODS, AUTO_PAPER_CROP, DEFAULT_BM3D_LIMIT, DEFAULT_MAKE_BENCH, EXTENDED_CONDITIONS,
                      FROZEN_CONDITIONS, PAPER_SIGMAS, UNDAMAGED)

# The modules that do the work (numpy, OpenCV, torch) are imported by main_from_args, not here:
# this module builds the ``cleanvision eval`` parser, whose --help must not wait for them.
if TYPE_CHECKING:
    from .methods import Method

JSON_NAME, MD_NAME, FIGURE_NAME = "results.json", "results.md", "figure.png"
#: Every condition --conditions takes, and what 'all' means.
ALL_CONDITIONS = FROZEN_CONDITIONS + EXTENDED_CONDITIONS + (UNDAMAGED,)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--clean", action="append", type=Path, required=True, metavar="DIR",
                    help="folder of clean images; repeat for several sets (e.g. CBSD68 and Kodak24)")
    ap.add_argument("--bench", default=".bench/{set}", metavar="DIR",
                    help="frozen noisy benchmark of the set ({set} = the clean folder's name); built with "
                         "make_bench.py if it does not exist (default: .bench/{set})")
    ap.add_argument("--make-bench", type=Path, default=DEFAULT_MAKE_BENCH, metavar="PY",
                    help=f"the frozen benchmark generator (default: {DEFAULT_MAKE_BENCH})")
    ap.add_argument("--seed", type=int, default=0, help="benchmark seed (default 0, the published one)")
    ap.add_argument("--out", default="docs/bench/{set}", metavar="DIR",
                    help="output folder for results.json, results.md, figure.png (default: docs/bench/{set})")
    ap.add_argument("--model", action="append", default=None, metavar="M",
                    help="'shipped' (the package's weights; default) or a save_pretrained folder / Hub repo id; "
                         "repeat to compare models")
    ap.add_argument("--engine", default="auto", choices=ENGINES,
                    help=f"model engine (default auto: {AUTO_RULE})")
    ap.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda if available)")
    ap.add_argument("--methods", default=",".join(ALL_METHODS),
                    help=f"comma-separated subset of {','.join(ALL_METHODS)} (default: all; 'model' = every --model)")
    ap.add_argument("--conditions", default=",".join(FROZEN_CONDITIONS),
                    help="frozen-benchmark conditions: 'none', 'all' (the seven, the extended "
                         f"{','.join(EXTENDED_CONDITIONS)} and {UNDAMAGED}: the clean photo as input) or a "
                         "comma-separated list (default: the seven)")
    ap.add_argument("--paper-sigmas", default=",".join(map(str, PAPER_SIGMAS)),
                    help="σ values of the paper protocol ('' for none; default 15,25,50)")
    ap.add_argument("--paper-crop", default="auto",
                    help="paper-protocol centre crop in px; 'auto' = 500 for Kodak24 (FFDNet's protocol), "
                         "whole image otherwise; 0 = whole image")
    ap.add_argument("--limit", type=int, default=None, metavar="N", help="first N images (sorted by name) only")
    ap.add_argument("--bm3d-limit", type=int, default=DEFAULT_BM3D_LIMIT, metavar="N",
                    help=f"BM3D on the first N images only (slow; default {DEFAULT_BM3D_LIMIT}; 0 = all)")
    ap.add_argument("--figure-images", type=int, default=2, metavar="N", help="images in the figure (0 = none)")
    ap.add_argument("--figure-conditions", default="gauss50,sp10,scribble,mixed", help="conditions in the figure")
    ap.add_argument("--crop-size", type=int, default=96, help="figure crop size in px (shown 2× enlarged)")
    ap.add_argument("--update", action="store_true",
                    help="keep the results of methods not run this time from the existing results.json "
                         "(same images and benchmark), e.g. to score a new model without rerunning BM3D")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip() and t.strip().lower() != "none"]


def main_from_args(args: argparse.Namespace) -> int:
    import torch

    from .methods import build_methods
    from .render import render_markdown
    from .run import evaluate_set
    from .sets import BenchError

    methods_wanted = _split(args.methods)
    conditions = _split(args.conditions)
    if conditions == ["all"]:
        conditions = list(ALL_CONDITIONS)
    bad = [c for c in conditions if c not in ALL_CONDITIONS]
    if bad:
        raise BenchError(f"unknown condition(s) {', '.join(bad)}; choose from {', '.join(ALL_CONDITIONS)} or 'all'")
    try:
        sigmas = [int(s) for s in _split(args.paper_sigmas)]
    except ValueError:
        raise BenchError(f"--paper-sigmas takes integers, got {args.paper_sigmas!r}") from None
    if len(args.clean) > 1:
        for opt in ("out", "bench"):
            if "{set}" not in getattr(args, opt):
                raise BenchError(f"with several --clean sets, --{opt} must contain {{set}}")
    if torch.cuda.is_available():  # reproducible GPU numbers: no TF32, deterministic kernels
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    methods = build_methods(methods_wanted, args.model or ["shipped"], args.engine, args.device, args.bm3d_limit)
    if not methods:
        raise BenchError("no methods selected")
    arguments = {k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, list) else v)
                 for k, v in vars(args).items() if k not in ("func", "command")}
    for clean_dir in args.clean:
        set_name = clean_dir.resolve().name
        if args.paper_crop == "auto":
            crop = AUTO_PAPER_CROP.get(set_name, 0)
        else:
            try:
                crop = int(args.paper_crop)
            except ValueError:
                raise BenchError(f"--paper-crop takes 'auto' or pixels, got {args.paper_crop!r}") \
                    from None
        out = Path(args.out.replace("{set}", set_name))
        bench = Path(args.bench.replace("{set}", set_name))
        t0 = time.perf_counter()
        doc, crops = evaluate_set(clean_dir, bench, methods, conditions=conditions, paper_sigmas=sigmas,
                                  paper_crop=crop, limit=args.limit, seed=args.seed, make_bench=args.make_bench,
                                  figure_images=args.figure_images,
                                  figure_conditions=_split(args.figure_conditions), crop_size=args.crop_size,
                                  progress=not args.no_progress)
        doc["arguments"] = arguments
        doc["wall_seconds"] = time.perf_counter() - t0
        if args.update and (out / JSON_NAME).is_file():
            doc = _merge_for_update(out / JSON_NAME, doc)
        write_outputs(doc, crops, methods, out, args.crop_size)
        print(f"{set_name}: {out / JSON_NAME}, {out / MD_NAME}" + (f", {out / FIGURE_NAME}" if crops else "")
              + f" ({doc['wall_seconds']:.0f} s)", file=sys.stderr)
        print(render_markdown(doc))
    return 0


def _merge_for_update(path: Path, doc: dict) -> dict:
    """``--update``: the new rows merged into the old document, the refusal said in flags."""
    from .run import merge_into
    from .sets import BenchError

    try:
        return merge_into(json.loads(path.read_text()), doc)
    except BenchError as e:
        raise BenchError(f"--update: {e}; run without --update") from None


def write_outputs(doc: dict, crops: dict, methods: list[Method], out: Path, crop_size: int = 96) -> None:
    from .render import make_figure, render_markdown

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (JSON_NAME + ".part")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, out / JSON_NAME)
    (out / MD_NAME).write_text(render_markdown(doc, str(out / JSON_NAME), tool="cleanvision eval"))
    if crops:
        make_figure(crops, methods, out / FIGURE_NAME, crop_size, 2)


def build_parser(ap: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    ap = ap or argparse.ArgumentParser(prog="python -m cleanvision.bench", description=__doc__,
                                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    ap.set_defaults(func=main_from_args)
    return ap


def add_eval_parser(sub) -> argparse.ArgumentParser:
    """``cleanvision eval``: the same options as ``python -m cleanvision.bench``."""
    p = sub.add_parser("eval", help="benchmark: PSNR/SSIM tables of models and classical baselines",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    return build_parser(p)
