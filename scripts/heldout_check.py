#!/usr/bin/env python
"""Choose between candidate weights on held-out training photos, never on a test set.

    python scripts/heldout_check.py --model shipped --model runs/stage21 --model runs/stage21-avg

Training holds out 5 % of its photos (``holdout_split``, by a hash of the file name) for
validation, but validates on one condition (`mixed`). A candidate changed by a new mix or
averaged with the shipped weights moves some conditions up and others down, so the choice
needs every condition — and the test sets (CBSD68, Kodak24, BSD68, Set12, the real pairs) must
not make it. This runs ``cleanvision eval`` on those same held-out photos: in colour with every
benchmark condition (the seven frozen ones, the four extended ones, undamaged) and the paper
protocol, and converted to grey with the paper protocol (σ 15/25/50, grey in, grey out), then
prints each candidate against the first ``--model``: per row, and how many rows rose or fell.
Real camera noise has no synthetic twin here; the real pairs are measured once a candidate is
chosen (``scripts/benchmark.sh``). The photos are linked (grey ones written) under ``--work``,
which ``.gitignore`` keeps out of the repository.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cleanvision.bench.command import build_parser  # noqa: E402
from cleanvision.data import holdout_split, list_images  # noqa: E402
from cleanvision.image_io import write_image  # noqa: E402

TRAIN_DIRS = [ROOT.parent / "shared" / "data" / "train" / d for d in ("CBSD432", "Sun_Hays80", "wikipedia-photos")]
SETS = ("heldout-colour", "heldout-grey")


def heldout_files(train_dirs: list[Path], fraction: float) -> list[Path]:
    """The photos ``train_accelerate.py --validation_fraction fraction`` holds out of these folders."""
    return holdout_split(list_images([str(d) for d in train_dirs]), fraction)[1]


def own_noise_limit(text: str) -> float | None:
    """``--max_own_noise``: a number, or ``None`` (every photo) for a negative one."""
    v = float(text)
    return None if v < 0 else v


def add_heldout_arguments(ap: argparse.ArgumentParser, limit: bool = False) -> None:
    """The options that say which photos are held out (``--train_data_dir``,
    ``--validation_fraction``; with ``limit``, ``--limit`` and ``--max_own_noise`` on which are read)."""
    ap.add_argument("--train_data_dir", nargs="+", type=Path, default=TRAIN_DIRS,
                    help="the training folders whose held-out photos are read (default: the shipped model's)")
    ap.add_argument("--validation_fraction", type=float, default=0.05,
                    help="the share training held out (train_accelerate.py's default: 0.05)")
    if limit:
        ap.add_argument("--limit", type=int, default=None, help="first N held-out photos (default: all)")
        ap.add_argument("--max_own_noise", type=own_noise_limit, default=3.0,
                        help="read only the photos whose own noise (skimage estimate_sigma, 0-255) is at most "
                             "this: a noisy reference scores removing its noise as damage (default 3; "
                             "a negative value: every photo)")


def prepare_sets(files: list[Path], work: Path) -> tuple[Path, Path]:
    """A colour folder (links to ``files``) and a grey one (8-bit grey PNGs of them) under ``work``."""
    colour, grey = work / "src" / SETS[0], work / "src" / SETS[1]
    for d in (colour, grey):
        d.mkdir(parents=True, exist_ok=True)
    for f in files:
        name = f"{f.parent.name}_{f.stem}"  # folders may share file names
        link = colour / (name + f.suffix.lower())
        if not link.is_symlink():
            link.symlink_to(f.resolve())
        target = grey / (name + ".png")
        if not target.is_file():
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                raise SystemExit(f"cannot read {f}")
            # atomic: an interrupted run must not leave a truncated PNG that the next one reuses
            write_image(target, cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    return colour, grey


def model_rows(results: dict) -> dict[str, dict[str, float]]:
    """method -> condition -> mean PSNR, for every ``model:`` method in a results.json, as it runs
    by default (a noise-map model's rows told the true σ, ``:guided``, are left out: they exist
    only where there is a σ, and candidates are chosen on what users get)."""
    rows: dict[str, dict[str, float]] = {}
    for cond, methods in results["results"].items():
        for method, row in methods.items():
            if method.startswith("model:") and not method.endswith(":guided"):
                rows.setdefault(method, {})[cond] = row["psnr"]
    return rows


def compare(docs: dict[str, dict], baseline: str) -> list[tuple[str, str, dict[str, float]]]:
    """(set, condition, method -> PSNR) for every row, the baseline's method first."""
    out = []
    for set_name, doc in docs.items():
        rows = model_rows(doc)
        for cond in rows[baseline]:
            out.append((set_name, cond, {m: rows[m][cond] for m in [baseline, *sorted(set(rows) - {baseline})]}))
    return out


def render(table: list[tuple[str, str, dict[str, float]]], baseline: str) -> str:
    """Markdown: each candidate's PSNR and its change against the baseline, then a summary line each."""
    methods = list(table[0][2])
    head = f"| set | condition | {baseline} | " + " | ".join(m for m in methods[1:]) + " |"
    lines = [head, "| --- | --- | ---: | " + " | ".join("---:" for _ in methods[1:]) + " |"]
    for set_name, cond, psnr in table:
        base = psnr[baseline]
        lines.append(f"| {set_name} | `{cond}` | {base:.2f} | "
                     + " | ".join(f"{psnr[m]:.2f} ({psnr[m] - base:+.2f})" for m in methods[1:]) + " |")
    lines.append("")
    for m in methods[1:]:
        d = [psnr[m] - psnr[baseline] for *_, psnr in table]
        up, down = sum(x > 0.005 for x in d), sum(x < -0.005 for x in d)
        lines.append(f"{m}: {up} rows better, {down} worse, {len(d) - up - down} within 0.005 dB; "
                     f"mean change {sum(d) / len(d):+.3f} dB, worst {min(d):+.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True,
                    help="model folder or 'shipped'; repeat it (the first is the baseline)")
    add_heldout_arguments(ap)
    ap.add_argument("--conditions", default="all", help="colour conditions (as cleanvision eval's)")
    ap.add_argument("--paper-sigmas", default="15,25,50", help="paper-protocol σ, colour and grey")
    ap.add_argument("--engine", default="auto", help="as cleanvision eval's --engine")
    ap.add_argument("--work", type=Path, default=ROOT / ".bench" / "heldout",
                    help="where the links, grey copies, noisy sets and results go")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    if len(args.model) < 2:
        ap.error("give at least two --model: a baseline and a candidate")
    files = heldout_files(args.train_data_dir, args.validation_fraction)
    if not files:
        ap.error(f"no held-out photos in {', '.join(map(str, args.train_data_dir))} "
                 f"at --validation_fraction {args.validation_fraction}")
    colour, grey = prepare_sets(files, args.work)
    docs = {}
    for clean, conditions in ((colour, args.conditions), (grey, "none")):
        out = args.work / "results" / clean.name
        common = ["--clean", str(clean), "--bench", str(args.work / "bench" / "{set}"), "--out", str(out),
                  "--methods", "model", "--conditions", conditions, "--paper-sigmas", args.paper_sigmas,
                  "--engine", args.engine, "--figure-images", "0"]
        bench_args = build_parser().parse_args(
            common + [a for m in args.model for a in ("--model", m)] + (["--no-progress"] if args.no_progress else []))
        with contextlib.redirect_stdout(sys.stderr):  # its own tables; ours is the comparison
            bench_args.func(bench_args)
        docs[clean.name] = json.loads((out / "results.json").read_text())
    doc = docs[SETS[0]]
    baseline = next(iter(doc["methods"]))  # the first --model, under the name the benchmark gave it
    engines = ", ".join(sorted({m["engine"] for m in doc["methods"].values() if "engine" in m}))
    env = doc["environment"]
    print(f"\n{len(files)} held-out photos (--validation_fraction {args.validation_fraction:g}); "
          f"PSNR dB, change against {baseline}; engine {engines} on {env['cpu']}, "
          f"{env['torch_threads']} threads\n")
    print(render(compare(docs, baseline), baseline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
