#!/usr/bin/env python
"""Score a model folder's int8 graph against its float model, and record the gate it passed.

    python scripts/int8_gate.py MODEL_DIR                      # the full gate; prints the table
    python scripts/int8_gate.py MODEL_DIR --record             # ... and stores it in model_int8.onnx
    python scripts/int8_gate.py MODEL_DIR --limit 8 --conditions mixed --out docs/bench/int8_qat

Both engines restore the same images through the same ``Denoiser`` tiling: the float model
with ``engine="reference"`` (the yardstick) and the folder's ``model_int8.onnx`` with
``engine="int8"``. The gate sets are CBSD68 on the frozen benchmark's conditions (built in
``.bench/CBSD68`` by ``../shared/bench/make_bench.py`` if missing, as ``cleanvision eval`` does)
and the real pairs of PolyU and CC15; per set and condition the mean PSNR of each, the mean Δ
and the worst image's Δ. The gate passes when every Δ is at most 0.10 dB below and every worst
image at most 0.5 dB below (:data:`cleanvision.int8.GATE_MEAN_DB`, ``GATE_WORST_DB``).

``--record`` writes the result into the graph's metadata, which is what ``engine="auto"`` reads
(:data:`cleanvision.options.INT8_AUTO_RULE`); it is refused with ``--limit``, since a gate passed on
part of the sets is no gate. ``--out`` writes the JSON and its table (``.md``), which
docs/speed.md includes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
#: The issue's quality gate: these CBSD68 conditions and both real sets.
CONDITIONS = ("gauss25", "sp10", "scribble", "mixed", "luma25")
SETS = (DATA / "CBSD68", DATA / "real" / "PolyU", DATA / "real" / "CC15")


def gate_rows(model_dir: Path, sets: list[Path], conditions: list[str], limit: int | None,
              float_engine: str = "reference") -> list[dict]:
    """One row per (set, condition): images, mean PSNR float and int8, mean Δ, worst image Δ."""
    from cleanvision.bench.methods import model_method
    from cleanvision.bench.run import evaluate_set

    methods = [dataclasses.replace(model_method(str(model_dir), float_engine, "cpu"), key="float"),
               dataclasses.replace(model_method(str(model_dir), "int8", "cpu"), key="int8")]
    rows = []
    for folder in sets:
        doc, _ = evaluate_set(folder, ROOT / ".bench" / folder.name, methods, conditions=conditions,
                              paper_sigmas=[], paper_crop=0, limit=limit, figure_images=0)
        for cond, res in doc["results"].items():
            a, b = res["float"]["per_image"], res["int8"]["per_image"]
            delta = np.array([b[n]["psnr"] - a[n]["psnr"] for n in a])
            rows.append({"data": str(folder), "condition": cond, "images": len(delta),
                         "psnr_float": res["float"]["psnr"], "psnr_int8": res["int8"]["psnr"],
                         "delta": float(delta.mean()), "worst_image_delta": float(delta.min())})
            print(f"{folder.name} {cond} ({len(delta)}): float {rows[-1]['psnr_float']:.3f}, int8 "
                  f"{rows[-1]['psnr_int8']:.3f}, Δ {rows[-1]['delta']:+.3f} dB (worst image "
                  f"{rows[-1]['worst_image_delta']:+.2f})", flush=True)
    return rows


def markdown(report: dict) -> str:
    """The rows as a table for docs/speed.md, naming the graph, its QAT and the command."""
    q, qat = report["quantization"], report["qat"]
    lines = [f"Model `{report['model']}` (float weights sha256 `{report['weights_sha256'][:12]}`), int8 graph "
             f"from {qat['steps']} QAT steps (batch {qat['train_batch_size']}, {qat['patch_size']} px crops, "
             f"learning rate {qat['learning_rate']:g}), weights ±{q['weight_max']}, last convolution "
             f"{'in float' if q['float_last'] else 'int8'}"
             f"{'' if q.get('learn_activation_scale', True) else ', activation ranges fixed at calibration'}"
             f"{', channels equalised (strength %g)' % q['equalise'] if q.get('equalise') else ''}; "
             f"float engine `{report['float_engine']}`; "
             f"`{report['command']}`.", "",
             "| set | condition | images | float PSNR dB | int8 PSNR dB | Δ dB | worst image Δ dB |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {Path(r['data']).name} | {r['condition']} | {r['images']} | {r['psnr_float']:.3f} | "
              f"{r['psnr_int8']:.3f} | {r['delta']:+.3f} | {r['worst_image_delta']:+.2f} |" for r in report["rows"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path, help="model folder with model_int8.onnx")
    ap.add_argument("--sets", nargs="+", type=Path, default=list(SETS), help="clean or real-pair folders")
    ap.add_argument("--conditions", default=",".join(CONDITIONS), help="frozen CBSD68 conditions (comma-separated)")
    ap.add_argument("--limit", type=int, default=None, help="first N images of each set (no --record)")
    ap.add_argument("--float-engine", default="reference", help="the float yardstick (default: reference)")
    ap.add_argument("--record", action="store_true", help="store the gate in the graph's metadata")
    ap.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md")
    args = ap.parse_args(argv)
    if args.record and args.limit:
        ap.error("--record needs the full sets: a gate passed on part of them is no gate (drop --limit)")

    from cleanvision.bench.sets import sha256_file
    from cleanvision.int8 import INT8_FILE, read_metadata, record_gate

    graph = args.model / INT8_FILE
    meta = read_metadata(graph)
    rows = gate_rows(args.model, args.sets, [c for c in args.conditions.split(",") if c], args.limit,
                     args.float_engine)
    command = " ".join(["python scripts/int8_gate.py", *(argv if argv is not None else sys.argv[1:])])
    report = {"model": str(args.model), "weights_sha256": sha256_file(args.model / "model.safetensors"),
              "quantization": json.loads(meta["quantization"]), "qat": json.loads(meta["qat"]),
              "float_engine": args.float_engine, "command": command, "rows": rows}
    if args.record:
        record = record_gate(graph, rows, command)
        print(f"{graph}: gate {'passed' if record['passed'] else 'not passed'} (recorded)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
