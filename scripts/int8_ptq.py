"""Post-training int8 quantisation of the shipped model in ONNX Runtime, measured against the gate.

    python scripts/int8_ptq.py [--model DIR] [--calibration ../shared/data/train/CBSD432]
                               [--keep-float first,last] [--method MinMax|Percentile|Entropy]
                               [--per-layer N] [--openvino] [--out docs/bench/int8_ptq.json]

Issue 13's rule: int8 ships only where it costs at most 0.05 dB against ``reference`` on CBSD68
``mixed`` and on real PolyU photos. This script builds the int8 graph (QDQ, per-channel int8
weights, uint8 activations, calibrated on degraded crops of *training* photos drawn by
``cleanvision.real_noise.training_batch``, never a test set), times it against the fp32 ONNX
Runtime engine at 512² in one process, scores both on the two gate sets and writes the JSON
(and its tables, ``.md`` beside it, which docs/speed.md includes).
Rerun it whenever the shipped weights change. Nothing here is used by ``engine="auto"`` unless
the gate passes.

``--per-layer N`` asks which layers the loss comes from: each middle convolution is quantised
alone (all others float) and scored on the first N images of each gate set. ``--openvino``
also times both graphs in OpenVINO (``pip install openvino``; not a dependency), to choose the
runtime by measurement.
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


def conv_index(name: str, n: int) -> int:
    """``first``, ``last`` or a 0-based index among the ``n`` convolutions."""
    i = {"first": 0, "last": n - 1}.get(name)
    i = int(name) if i is None else i
    if not 0 <= i < n:
        raise ValueError(f"convolution {name!r} out of range: the network has {n}")
    return i


def quantize(fp32: bytes, batches: list[np.ndarray], keep_float: list[str], method: str) -> bytes:
    """The int8 QDQ graph of ``fp32``; ``keep_float`` names convolutions left in float (see :func:`conv_index`)."""
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
    exclude = [convs[conv_index(k, len(convs))] for k in keep_float]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"],
                        nodes_to_exclude=exclude, calibrate_method=getattr(CalibrationMethod, method))
        return dst.read_bytes()


class OpenVINOSession:
    """An OpenVINO compiled model behind ONNX Runtime's ``run(None, {input: x})``, so a Denoiser tiles it alike."""

    def __init__(self, graph: bytes, threads: int):
        import openvino as ov

        core = ov.Core()
        model = core.read_model(graph, b"")
        self.compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                          "INFERENCE_PRECISION_HINT": "f32",
                                                          "PERFORMANCE_HINT": "LATENCY"})
        self.request = self.compiled.create_infer_request()

    def run(self, _outputs, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [self.request.infer(list(feeds.values()))[0].copy()]


def gate_psnr(engines: dict, pairs: list, desc: str) -> dict[str, np.ndarray]:
    """PSNR per image of each engine on (truth, damaged) pairs."""
    from tqdm.auto import tqdm

    from cleanvision.metrics import psnr_uint8

    return {name: np.array([psnr_uint8(c, den(n)) for c, n in tqdm(pairs, desc=f"{desc} {name}", leave=False)])
            for name, den in engines.items()}


def markdown(report: dict) -> str:
    """The JSON as tables for docs/speed.md (``<!-- include:int8_ptq.md -->``), naming machine and weights."""
    m = report["machine"]
    runtimes = ", ".join(f"{k} {m[k]}" for k in ("onnxruntime", "openvino") if k in m)
    lines = [f"Machine: {m['cpu']} ({', '.join(k for k, v in m['isa'].items() if v) or 'no listed ISA extension'}), "
             f"{m['torch_threads']} thread(s), {runtimes}. Weights sha256 `{report['weights_sha256'][:12]}`; "
             f"`{report['command']}`; calibration: {report['calibration']['method']} on "
             f"{report['calibration']['images']} degraded crops of {Path(report['calibration']['data']).name}, "
             f"convolutions kept in float: {', '.join(report['calibration']['keep_float']) or 'none'}.", "",
             "| runtime, precision | 512×512 median s | × ONNX Runtime fp32 | G(FL)OP/s | % of peak |",
             "| --- | ---: | ---: | ---: | ---: |"]
    base = report["seconds_512"]["onnxruntime fp32"]
    lines += [f"| {k} | {v:.3f} | {base / v:.2f} | {report['gops_512'][k]:.0f} | {report['percent_of_peak'][k]:.0f} |"
              for k, v in report["seconds_512"].items()]
    pk = report["peak_gops"]
    lines += ["", f"Measured peaks, one multiply of square matrices: fp32 {pk['fp32']:.0f} GFLOP/s (torch), int8 "
                  f"{pk['int8']:.0f} GOP/s (ONNX Runtime MatMulInteger): int8 can be at most {pk['int8'] / pk['fp32']:.1f}× "
                  "fp32 here."]
    lines += ["", "| gate set | images | fp32 PSNR dB | int8 PSNR dB | Δ dB | worst image Δ dB |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {Path(q['data']).name} `{q['condition']}` | {q['images']} | {q['psnr_fp32']:.3f} | {q['psnr_int8']:.3f} "
              f"| {q['delta']:+.3f} | {q['worst_image_delta']:+.2f} |" for q in report["quality"]]
    lines.append("")
    lines.append(f"Passes the 0.05 dB gate: {'yes' if report['passes_gate'] else 'no'}.")
    if "per_layer" in report:
        pl = report["per_layer"]
        sets = list(pl["layers"][0]["delta"])
        lines += ["", f"One convolution in int8, all others float (first {pl['images_per_gate_set']} images of each "
                      "gate set), Δ dB against fp32:", "",
                  "| convolution | " + " | ".join(Path(s).name for s in sets) + " |",
                  "| ---: | " + " | ".join("---:" for _ in sets) + " |"]
        lines += [f"| {r['conv']} | " + " | ".join(f"{r['delta'][s]:+.3f}" for s in sets) + " |" for r in pl["layers"]]
    return "\n".join(lines) + "\n"


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
    ap.add_argument("--per-layer", type=int, default=0, metavar="N",
                    help="also quantise each middle convolution alone, scored on N images of each gate set")
    ap.add_argument("--openvino", action="store_true", help="also time both graphs in OpenVINO")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "bench" / "int8_ptq.json")
    args = ap.parse_args(argv)

    import onnx
    import onnxruntime as ort

    from cleanvision.export import onnx_bytes, ort_session
    from cleanvision.hardware import cpu_name, isa_summary
    from cleanvision.inference import Denoiser, load_model
    from cleanvision.speed import (int8_matmul_peak_gops, matmul_peak_gflops, quality_pairs, test_image,
                                   weights_sha256)

    model = load_model(args.model)
    keep = [k for k in args.keep_float.split(",") if k]
    fp32 = onnx_bytes(model, whole_image=False)  # the tiles Denoiser runs
    batches = calibration_batches(args.calibration, args.calibration_images, 128, 0)
    int8 = quantize(fp32, batches, keep, args.method)
    threads = torch.get_num_threads()

    def engine(session=None) -> Denoiser:  # same tiling, another graph or runtime
        return Denoiser(model, engine="onnxruntime", session=session)

    engines = {"onnxruntime fp32": engine(), "onnxruntime int8": engine(ort_session(model, graph=int8))}
    timed = dict(engines)
    if args.openvino:
        import openvino

        timed |= {"openvino fp32": engine(OpenVINOSession(fp32, threads)),
                  "openvino int8": engine(OpenVINOSession(int8, threads))}
    img = test_image(512, 512)
    speed = {}
    for name, den in timed.items():
        den(img)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            den(img)
            times.append(time.perf_counter() - t0)
        speed[name] = statistics.median(times)
    peak = {"fp32": matmul_peak_gflops("fp32"), "int8": int8_matmul_peak_gops()}
    gops = {name: model.flops_per_pixel * 512 * 512 / t / 1e9 for name, t in speed.items()}
    gates = [quality_pairs(folder, args.limit) + (folder,)
             for folder in args.gate or [DATA / "CBSD68", DATA / "real" / "PolyU"]]
    quality = []
    for condition, pairs, folder in gates:
        psnr = gate_psnr(engines, pairs, folder.name)
        a, b = psnr["onnxruntime fp32"], psnr["onnxruntime int8"]
        quality.append({"data": str(folder), "condition": condition, "images": len(pairs),
                        "psnr_fp32": float(a.mean()), "psnr_int8": float(b.mean()),
                        "delta": float((b - a).mean()), "worst_image_delta": float((b - a).min())})
    per_layer = []
    if args.per_layer:
        n = sum(node.op_type == "Conv" for node in onnx.load_from_string(fp32).graph.node)
        subsets = [(condition, pairs[:args.per_layer], folder) for condition, pairs, folder in gates]
        base = [gate_psnr({"fp32": engines["onnxruntime fp32"]}, pairs, f.name)["fp32"] for _, pairs, f in subsets]
        for i in range(1, n - 1):
            one = engine(ort_session(model, graph=quantize(fp32, batches, [str(j) for j in range(n) if j != i],
                                                           args.method)))
            deltas = [float((gate_psnr({f"conv {i}": one}, pairs, f.name)[f"conv {i}"] - b).mean())
                      for (_, pairs, f), b in zip(subsets, base)]
            per_layer.append({"conv": i, "delta": dict(zip([str(f) for _, _, f in subsets], deltas))})
            print(f"conv {i} alone in int8: " + ", ".join(f"{f.name} {d:+.3f} dB" for (_, _, f), d in zip(subsets, deltas)),
                  flush=True)
    report = {"machine": {"cpu": cpu_name(), "isa": isa_summary(), "torch_threads": threads,
                          "onnxruntime": ort.__version__} | ({"openvino": openvino.__version__} if args.openvino else {}),
              "model": args.model or "shipped", "weights_sha256": weights_sha256(args.model),
              "command": " ".join(["python scripts/int8_ptq.py", *(argv if argv is not None else sys.argv[1:])]),
              "calibration": {"data": str(args.calibration), "images": args.calibration_images, "crop": 128,
                              "method": args.method, "keep_float": keep},
              "seconds_512": speed, "gops_512": gops,
              "peak_gops": peak, "percent_of_peak": {k: 100 * v / peak[k.split()[-1]] for k, v in gops.items()},
              "speedup_int8_vs_fp32": speed["onnxruntime fp32"] / speed["onnxruntime int8"],
              "quality": quality, "passes_gate": all(q["delta"] >= -0.05 for q in quality)}
    if per_layer:
        report["per_layer"] = {"images_per_gate_set": args.per_layer, "layers": per_layer,
                               "best_single_layer_delta": max(min(r["delta"].values()) for r in per_layer)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    print(json.dumps({k: report[k] for k in ("seconds_512", "speedup_int8_vs_fp32", "passes_gate")}, indent=1))
    for q in quality:
        print(f"{q['data']} {q['condition']} ({q['images']}): fp32 {q['psnr_fp32']:.3f}, int8 {q['psnr_int8']:.3f}, "
              f"Δ {q['delta']:+.3f} dB (worst image {q['worst_image_delta']:+.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
