#!/usr/bin/env python
"""Measure the fixed 2-pixel pattern a model leaves (a faint dot grid on flat areas).

    python scripts/pixel_pattern.py --model shipped [--model runs/x] [--phase-correction] [--limit N]

The body of the shipped network runs on a 2×2 pixel-unshuffle, so each sub-pixel phase of a
2×2 cell has its own output channel, and an offset that differs between them shows as a dot
grid. For each image, ``cleanvision.metrics.pixel_pattern_score`` of output − reference (the
power at the three Nyquist bins over the mean power; about 1 without a fixed phase); the table
gives the median over each set, for the noisy input and each model:

* CC15 and PolyU: real noisy photos against the mean of many shots;
* CBSD68, undamaged: the clean photo in, scored against itself;
* CBSD68 `gauss25`: the frozen benchmark's σ 25 images (built under ``.bench/CBSD68``).

``--phase-correction`` runs each model twice, with ``phase_correction``
(:func:`cleanvision.model.remove_phase_offset`) switched off and on, whatever its config says. Writes
``docs/bench/pixel_pattern.json`` and ``.md`` (``docs/benchmark.md`` includes the table).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cleanvision.bench.sets import ensure_bench, list_images, read_clean, read_noisy, real_pairs  # noqa: E402
from cleanvision.hardware import cpu_name  # noqa: E402
from cleanvision.inference import Denoiser, load_model  # noqa: E402
from cleanvision.metrics import pixel_pattern_score  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
MAKE_BENCH = ROOT.parent / "shared" / "bench" / "make_bench.py"


def pairs(limit: int | None) -> dict[str, list[tuple[str, np.ndarray, np.ndarray]]]:
    """``{set: [(name, input, reference)]}`` for the four sets the table reports."""
    out: dict[str, list] = {}
    for name in ("CC15", "PolyU"):
        items = list(real_pairs(DATA / "real" / name).items())[:limit]
        out[name] = [(n, read_clean(a), read_clean(b)) for n, (a, b) in items]
    clean = list_images(DATA / "CBSD68")[:limit]
    out["CBSD68 undamaged"] = [(f.name, read_clean(f), read_clean(f)) for f in clean]
    bench = ROOT / ".bench" / "CBSD68"
    manifest = ensure_bench(bench, DATA / "CBSD68", MAKE_BENCH, 0, ["gauss25"])
    gauss = []
    for f in clean:
        ref = read_clean(f)
        gauss.append((f.name, read_noisy(bench, manifest, "gauss25", f.name, ref.shape)[0], ref))
    out["CBSD68 gauss25"] = gauss
    return out


def scores(restore, items) -> list[float]:
    return [pixel_pattern_score(restore(x).astype(np.float64) - ref.astype(np.float64))
            for _, x, ref in tqdm(items, leave=False)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True,
                    help="'shipped', a model folder or a Hub repo id (repeatable)")
    ap.add_argument("--engine", default="onnxruntime", help="Denoiser engine (default: the benchmark's)")
    ap.add_argument("--phase-correction", action="store_true",
                    help="run each model with its phase correction switched off and on")
    ap.add_argument("--limit", type=int, default=None, help="first N images of each set (default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "pixel_pattern",
                    help="writes OUT.json and OUT.md (default: docs/bench/pixel_pattern)")
    args = ap.parse_args(argv)
    sets = pairs(args.limit)
    rows = {"noisy input": {s: statistics.median(scores(lambda x: x, items)) for s, items in sets.items()}}
    for spec in args.model:
        for corrected in (False, True) if args.phase_correction else (None,):
            model = load_model(spec)
            if corrected is not None:
                model.phase_correction = corrected
            den = Denoiser(model, engine=args.engine)
            name = spec if spec == "shipped" else Path(spec.rstrip("/")).name or spec  # a folder by its name
            switch = {None: "", False: ", phase correction off", True: ", phase correction on"}[corrected]
            label = f"CleanVision ({name}{switch})"
            rows[label] = {s: statistics.median(scores(den, items)) for s, items in sets.items()}
    doc = {"machine": cpu_name(), "engine": args.engine, "limit": args.limit, "models": args.model,
           "images": {s: len(v) for s, v in sets.items()}, "median_score": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
    head = "| | " + " | ".join(f"{s} ({len(sets[s])})" for s in sets) + " |"
    lines = [f"2-pixel pattern score, median over each set (about 1: no fixed pattern); "
             f"`python scripts/pixel_pattern.py {' '.join('--model ' + m for m in args.model)}"
             f"{' --phase-correction' if args.phase_correction else ''}"
             f"{f' --limit {args.limit}' if args.limit else ''}`, engine `{args.engine}`, {cpu_name()}.", "",
             head, "| --- |" + " ---: |" * len(sets)]
    lines += [f"| {name} | " + " | ".join(f"{v[s]:.1f}" for s in sets) + " |" for name, v in rows.items()]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
