"""Post-training int8 quantisation of the shipped model in ONNX Runtime, measured against the gate.

    python scripts/int8_ptq.py [--model DIR] [--calibration ../shared/data/train/CBSD432]
                               [--keep-float first,last] [--method MinMax|Percentile|Entropy]
                               [--out docs/bench/int8_ptq.json]

Issue 13's rule: int8 ships only where it costs at most 0.05 dB against ``reference`` on CBSD68
``mixed`` and on real PolyU photos. This script builds the int8 graph (QDQ, per-channel int8
weights, uint8 activations, calibrated on degraded crops of *training* photos drawn by
``cleanvision.real_noise.training_batch``, never a test set), times it against the fp32 ONNX
Runtime engine at 512² in one process, scores both on the two gate sets and writes the JSON.
Rerun it whenever the shipped weights change. Nothing here is used by ``engine="auto"`` unless
the gate passes.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def calibration_batches(folder: Path, n: int, size: int, seed: int) -> list[np.ndarray]:
    """``n`` centre crops of training photos, each degraded as in training (one 1×3×size² array each)."""
    from cleanvision.image_io import images_in, read_image
    from cleanvision.real_noise import training_batch

    crops = []
    for f in images_in(folder, recursive=False)[:n]:
        img = read_image(f)
        h, w = img.shape[:2]
        if img.ndim != 3 or min(h, w) < size:
            continue
        top, left = (h - size) // 2, (w - size) // 2
        crops.append(torch.from_numpy(img[top:top + size, left:left + size, :3].astype(np.float32) / 255).permute(2, 0, 1))
    _, noisy = training_batch(torch.stack(crops), generator=torch.Generator().manual_seed(seed))
    return [noisy[i:i + 1].numpy() for i in range(len(noisy))]


def quantize(fp32: bytes, batches: list[np.ndarray], keep_float: list[str], method: str) -> bytes:
    """The int8 QDQ graph of ``fp32``; ``keep_float`` names convolutions (first, last) left in float."""
    import tempfile

    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    from cleanvision.export import INPUT

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(batches)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {INPUT: x}

    convs = [n.name for n in onnx.load_from_string(fp32).graph.node if n.op_type == "Conv"]
    exclude = [convs[{"first": 0, "last": -1}[k]] for k in keep_float]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"],
                        nodes_to_exclude=exclude, calibrate_method=getattr(CalibrationMethod, method))
        return dst.read_bytes()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="model folder or Hub id (default: shipped)")
    ap.add_argument("--calibration", type=Path, default=DATA / "train" / "CBSD432",
                    help="training photos to calibrate on (default: %(default)s)")
    ap.add_argument("--calibration-images", type=int, default=32)
    ap.add_argument("--keep-float", default="first,last", help="convolutions left in float: first,last or ''")
    ap.add_argument("--method", default="MinMax", choices=["MinMax", "Percentile", "Entropy"])
    ap.add_argument("--gate", action="append", type=Path, default=None,
                    help="quality sets (default: CBSD68 'mixed' and real PolyU)")
    ap.add_argument("--limit", type=int, default=None, help="first N images of each gate set")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "int8_ptq.json")
    args = ap.parse_args(argv)

    import onnxruntime as ort
    from tqdm.auto import tqdm

    from cleanvision.export import onnx_bytes, ort_session
    from cleanvision.hardware import cpu_name, isa_summary
    from cleanvision.inference import Denoiser, load_model
    from cleanvision.metrics import psnr_uint8
    from cleanvision.speed import quality_pairs, test_image, weights_sha256

    model = load_model(args.model)
    keep = [k for k in args.keep_float.split(",") if k]
    int8 = quantize(onnx_bytes(model), calibration_batches(args.calibration, args.calibration_images,
                                                                        128, 0), keep, args.method)
    engines = {"onnxruntime fp32": Denoiser(model, engine="onnxruntime"),
               "onnxruntime int8": Denoiser(model, engine="onnxruntime")}
    engines["onnxruntime int8"]._session = ort_session(model, graph=int8)  # same tiling, the int8 graph

    img = test_image(512, 512)
    speed = {}
    for name, den in engines.items():
        den(img)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            den(img)
            times.append(time.perf_counter() - t0)
        speed[name] = statistics.median(times)
    quality = []
    for folder in args.gate or [DATA / "CBSD68", DATA / "real" / "PolyU"]:
        condition, pairs = quality_pairs(folder, args.limit)
        psnr = {name: [psnr_uint8(c, den(n)) for c, n in tqdm(pairs, desc=f"{folder.name} {name}", leave=False)]
                for name, den in engines.items()}
        a, b = np.array(psnr["onnxruntime fp32"]), np.array(psnr["onnxruntime int8"])
        quality.append({"data": str(folder), "condition": condition, "images": len(pairs),
                        "psnr_fp32": float(a.mean()), "psnr_int8": float(b.mean()),
                        "delta": float((b - a).mean()), "worst_image_delta": float((b - a).min())})
    report = {"machine": {"cpu": cpu_name(), "isa": isa_summary(), "torch_threads": torch.get_num_threads(),
                          "onnxruntime": ort.__version__},
              "model": args.model or "shipped", "weights_sha256": weights_sha256(args.model),
              "command": " ".join(["python scripts/int8_ptq.py", *(argv if argv is not None else sys.argv[1:])]),
              "calibration": {"data": str(args.calibration), "images": args.calibration_images, "crop": 128,
                              "method": args.method, "keep_float": keep},
              "seconds_512": speed, "speedup_int8_vs_fp32": speed["onnxruntime fp32"] / speed["onnxruntime int8"],
              "quality": quality, "passes_gate": all(q["delta"] >= -0.05 for q in quality)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: report[k] for k in ("seconds_512", "speedup_int8_vs_fp32", "passes_gate")}, indent=1))
    for q in quality:
        print(f"{q['data']} {q['condition']} ({q['images']}): fp32 {q['psnr_fp32']:.3f}, int8 {q['psnr_int8']:.3f}, "
              f"Δ {q['delta']:+.3f} dB (worst image {q['worst_image_delta']:+.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
