"""Speed benchmark: the reference path against the fast engines and OpenCV NLM, on one machine.

    cleanvision bench [--sizes 512x512,2040x1080,3840x2160] [--engines reference,fp32,onnxruntime]

For each size the same noisy image (scikit-image's astronaut, resized, Gaussian σ = 25) is
restored by each engine in a fresh process, which reports model load time, first-call time,
the median of ``--repeats`` timed calls and its peak resident memory. The machine's own
matrix-multiply peak (fp32 and bf16) is measured in the same run, so achieved GFLOP/s can be
read against what these cores can do. Ratios (engine / reference) come from one run on one
machine; that is what the README reports. The CPU's model and ISA flags (AMX, AVX-512 BF16/VNNI,
AVX2) are recorded beside them, and each engine's GFLOP/s is given as a share of the measured
peak for its precision.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import queue
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .hardware import cpu_name, isa_summary
from .options import TILE_RULE

if TYPE_CHECKING:  # numpy is imported where it is used: `cleanvision bench --help` needs none of it
    import numpy as np

DEFAULT_SIZES = "512x512,2040x1080,3840x2160"


def test_image(width: int, height: int) -> np.ndarray:
    """The benchmark input: astronaut resized to ``width×height`` plus Gaussian σ = 25 (fixed seed)."""
    import cv2
    from skimage import data

    from .noise import add_gaussian_noise

    img = cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_CUBIC)
    return add_gaussian_noise(img, 25, rng=0)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _seconds(call) -> float:
    """Wall time of one ``call()``."""
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def _time_engine(model: str | None, engine: str, width: int, height: int, repeats: int,
                 tile_size: int | None, queue, threads: int | None = None) -> None:
    """Child process: load, warm up, time; report through ``queue``."""
    import torch

    from .inference import Denoiser

    if threads:
        torch.set_num_threads(threads)

    img = test_image(width, height)
    base = _peak_rss_mb()
    t0 = time.perf_counter()
    den = Denoiser.from_pretrained(model, engine=engine, tile_size=tile_size)
    load = time.perf_counter() - t0
    first = _seconds(lambda: den(img))
    times = [_seconds(lambda: den(img)) for _ in range(repeats)]
    queue.put({"engine": engine, "load_s": load, "first_call_s": first, "median_s": statistics.median(times),
               "times_s": times, "peak_rss_mb": _peak_rss_mb(), "rss_before_mb": base,
               "flops_per_pixel": den.model.flops_per_pixel,
               "tile_size": "one pass" if den.one_pass(height, width) else den.tile_size})


#: The paired timing (:func:`_time_pair`) runs at least ``repeats`` pairs and keeps pairing
#: until the pairs took ``--pair-seconds`` (at most ``PAIR_MAX`` pairs): three pairs of a 0.06 s
#: call put the median ratio anywhere from 1.09 to 1.44 in runs minutes apart (Intel Xeon).
PAIR_SECONDS, PAIR_MAX = 8.0, 100


def _time_pair(model: str | None, baseline: str, engine: str, width: int, height: int, repeats: int,
               tile_size: int | None, pair_seconds: float, queue) -> None:
    """Child process: ``model`` and ``baseline`` timed alternately on the same input, so both
    see the same machine: timed in two processes one after the other, the same model's 512×512
    median moved by up to 20 % between processes on a shared 2-core machine, more than the
    difference being measured. Each pair is timed in the other order than the one before."""
    from .inference import Denoiser

    img = test_image(width, height)
    dens = [Denoiser.from_pretrained(m, engine=engine, tile_size=tile_size) for m in (model, baseline)]
    for den in dens:
        den(img)
    pairs: list[list[float]] = []
    t0 = time.perf_counter()
    while len(pairs) < repeats or (time.perf_counter() - t0 < pair_seconds and len(pairs) < PAIR_MAX):
        order = (0, 1) if len(pairs) % 2 == 0 else (1, 0)
        pair = [0.0, 0.0]
        for i in order:
            pair[i] = _seconds(lambda: dens[i](img))
        pairs.append(pair)
    queue.put({"paired_median_s": statistics.median(a for a, _ in pairs),
               "baseline_median_s": statistics.median(b for _, b in pairs),
               "time_vs_baseline": statistics.median(a / b for a, b in pairs), "pairs": len(pairs)})


def _time_nlm(width: int, height: int, repeats: int, queue) -> None:
    import cv2

    img = cv2.cvtColor(test_image(width, height), cv2.COLOR_RGB2BGR)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        cv2.fastNlMeansDenoisingColored(img, None, 10, 10, 7, 21)
        times.append(time.perf_counter() - t0)
    queue.put({"engine": "opencv-nlm", "median_s": statistics.median(times), "times_s": times,
               "peak_rss_mb": _peak_rss_mb()})


def _in_child(target, *args, **kwargs) -> dict:
    """What ``target`` puts on its queue, run in a fresh process (each engine timed cold). A child
    that dies first (a model that does not load, out of memory) raises here; waiting on the
    queue alone left the parent hanging for ever."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q), kwargs=kwargs)
    p.start()
    while True:
        alive = p.is_alive()  # asked before waiting, so a result put just before exiting is still taken
        try:
            result = q.get(timeout=1.0)
            break
        except queue.Empty:
            if not alive:
                raise RuntimeError(f"the {target.__name__} process exited (code {p.exitcode}) without a "
                                   "result; its error is printed above") from None
    p.join()
    return result


def _peak_ops(multiply, max_n: int, min_seconds: float, repeats: int) -> float:
    """Best-of-``repeats`` operations/s (2·n³ per multiply) of ``multiply(n)``, a callable doing one n×n product.

    The size grows from 256 until one multiply takes ``min_seconds`` (or reaches ``max_n``), so
    the figure is a real peak on fast units and still takes seconds, not minutes, where the
    precision is emulated (bf16 on a CPU without AVX512-BF16 or AMX runs at a few GFLOP/s).
    """
    n = 256
    while True:
        once = multiply(n)
        once()
        t0 = time.perf_counter()
        once()
        if time.perf_counter() - t0 >= min_seconds or n >= max_n:
            break
        n *= 2
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        once()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def matmul_peak_gflops(dtype: str, max_n: int = 2048, min_seconds: float = 0.05, repeats: int = 5) -> float:
    """GFLOP/s of torch's square matrix multiply in ``fp32`` or ``bf16`` on this machine's CPU."""
    import torch

    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]

    def multiply(n: int):
        a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
        return lambda: a @ b

    return _peak_ops(multiply, max_n, min_seconds, repeats) / 1e9


def int8_matmul(b: np.ndarray):
    """``a ↦ a @ b`` for uint8 ``a`` and a constant int8 ``b``, int32 out, in ONNX Runtime (MatMulInteger).

    This is the u8×s8 integer GEMM that ONNX Runtime's int8 convolutions run on, with the
    weights (``b``) packed once as a convolution's are. On AVX2 without VNNI it multiplies pairs
    into int16 (``vpmaddubsw``), which saturates when both operands are near full range; with
    ``|b| < 64`` the product is exact everywhere.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from .export import ort_session

    k, n = b.shape
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "int8_matmul",
                              [helper.make_tensor_value_info("A", TensorProto.UINT8, ["m", k])],
                              [helper.make_tensor_value_info("Y", TensorProto.INT32, ["m", n])],
                              [numpy_helper.from_array(b.astype(np.int8), "B")])
    session = ort_session(None, graph=helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
                          .SerializeToString())
    return lambda a: session.run(None, {"A": a})[0]


def int8_matmul_peak_gops(max_n: int = 1024, min_seconds: float = 0.05, repeats: int = 5) -> float:
    """GOP/s of ONNX Runtime's int8 matrix multiply: the ceiling an int8 engine is read against,
    as :func:`matmul_peak_gflops` is for fp32 (needs onnx and onnxruntime).

    ``max_n`` stops at 1024: on an AVX2 EPYC, ONNX Runtime 1.32 ran 1024² at about 165 GOP/s
    and 2048² at about 4, so the peak is read below that cliff.
    """
    import numpy as np

    rng = np.random.default_rng(0)

    def multiply(n: int):
        run = int8_matmul(rng.integers(-128, 128, (n, n), dtype=np.int8))
        a = rng.integers(0, 256, (n, n), dtype=np.uint8)
        return lambda: run(a)

    return _peak_ops(multiply, max_n, min_seconds, repeats) / 1e9


def engine_precision(engine: str) -> str:
    """Which matmul peak an engine's GFLOP/s is read against."""
    return engine if engine in ("bf16", "int8") else "fp32"


def default_engines() -> list[str]:
    """The engines worth timing here: bf16 only where it is native, ONNX Runtime where installed."""
    from .hardware import cpu_native_bf16, ort_available

    engines = ["reference", "fp32"]
    if cpu_native_bf16():
        engines.append("bf16")
    if ort_available():
        engines.append("onnxruntime")
    return engines


def weights_sha256(model: str | None) -> str | None:
    """Which weights the quality rows belong to (a local folder's, or the shipped ones)."""
    from .bench.sets import sha256_file
    from .inference import model_location

    weights = Path(model_location(model)) / "model.safetensors"
    return sha256_file(weights) if weights.is_file() else None


def run(model: str | None, sizes: list[tuple[int, int]], engines: list[str], repeats: int,
        tile_size: int | None, nlm: bool = True, baseline: str | None = None,
        pair_seconds: float = PAIR_SECONDS) -> dict:
    """Time each engine at each size in its own process. With ``baseline`` (another model) both
    are then timed again in one more process, alternately, on the same engine, size and tile: a
    new model and the one it replaces compared where the machine is the same for both (the
    ratio is the median of the paired calls' ratios)."""
    import os

    import torch
    from tqdm.auto import tqdm

    from .inference import load_model

    for m in (model, baseline) if baseline else (model,):
        load_model(m)  # a model that does not load stops here with its own message, before any timing
    report = {"machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "torch": torch.__version__, "isa": isa_summary()},
              "peak_gflops": {d: matmul_peak_gflops(d) for d in ("fp32", "bf16")}
              | ({"int8": int8_matmul_peak_gops()} if "int8" in engines else {}),
              "model": model or "shipped", "weights_sha256": weights_sha256(model),
              "tile_size": tile_size,  # None: each engine's default (TILE_RULE), per row
              **({"baseline": baseline, "baseline_weights_sha256": weights_sha256(baseline)} if baseline else {}),
              "repeats": repeats, "results": []}
    jobs = [(w, h, e) for (w, h) in sizes for e in engines + (["opencv-nlm"] if nlm else [])]
    for w, h, e in tqdm(jobs, desc="bench", unit="run"):
        if e == "opencv-nlm":
            r = _in_child(_time_nlm, w, h, max(1, repeats // 2))
        else:
            r = _in_child(_time_engine, model, e, w, h, repeats, tile_size)
            if baseline:
                r.update(_in_child(_time_pair, model, baseline, e, w, h, repeats, tile_size, pair_seconds))
        r.update(width=w, height=h, megapixels=w * h / 1e6, mp_per_s=w * h / 1e6 / r["median_s"])
        if "flops_per_pixel" in r:
            r["gflops"] = r["flops_per_pixel"] * w * h / r["median_s"] / 1e9
            r["percent_of_peak"] = 100 * r["gflops"] / report["peak_gflops"][engine_precision(e)]
        report["results"].append(r)
    for r in report["results"]:
        ref = next((x for x in report["results"] if x["engine"] == "reference"
                    and (x["width"], x["height"]) == (r["width"], r["height"])), None)
        if ref:
            r["speedup_vs_reference"] = ref["median_s"] / r["median_s"]
    return report


def tile_sweep(model: str | None, engine: str, size: tuple[int, int], tile_sizes: list[int],
               threads: list[int], repeats: int) -> list[dict]:
    """Median seconds and peak memory per (tile size, thread count), each in a fresh process.

    Bigger tiles waste less work on overlaps but hold more activations; this is the table the
    default tile size (and the app's thread count) is chosen from.
    """
    from tqdm.auto import tqdm

    w, h = size
    rows = []
    for t, n in tqdm([(t, n) for t in tile_sizes for n in threads], desc="tile sweep", unit="run"):
        r = _in_child(_time_engine, model, engine, w, h, repeats, t, threads=n)
        rows.append({"tile_size": t, "threads": n, "width": w, "height": h, "engine": engine,
                     "median_s": r["median_s"], "mp_per_s": w * h / 1e6 / r["median_s"],
                     "peak_rss_mb": r["peak_rss_mb"]})
    return rows


def quality_pairs(folder: Path, limit: int | None) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    """(condition, [(truth, damaged)]) for a real-pair folder (``X_real``/``X_mean``) or a clean one.

    A clean folder gets the benchmark's ``mixed`` condition, rebuilt bit for bit as
    ``make_bench.py`` makes it (same generator, drawn in OpenCV's channel order:
    :func:`~cleanvision.image_io.swap_rb`), so this is the frozen benchmark without its files.
    """
    import numpy as np

    from .bench.sets import read_clean, real_pairs
    from .image_io import images_in, swap_rb
    from .noise import bench_rng, random_mixture

    real = real_pairs(folder)
    if real:
        items = list(real.values())[:limit] if limit else list(real.values())
        return "real", [(read_clean(t), read_clean(n)) for n, t in items]
    files = images_in(folder, recursive=False)
    files = files[:limit] if limit else files
    pairs = []
    for f in files:
        clean = read_clean(f)
        noisy = random_mixture(swap_rb(clean), bench_rng(0, "mixed", f.name))[0]
        pairs.append((clean, np.ascontiguousarray(swap_rb(noisy))))
    return "mixed", pairs


def engine_quality(model: str | None, folder: str | Path, engines: list[str], limit: int | None = None) -> dict:
    """Mean PSNR per engine on ``folder``: real noisy/truth pairs, or a clean set's ``mixed`` condition.

    This is the gate an engine must pass to be chosen: within 0.05 dB of ``reference``.
    """
    import numpy as np
    from tqdm.auto import tqdm

    from .inference import Denoiser
    from .metrics import psnr_uint8

    condition, pairs = quality_pairs(Path(folder), limit)
    out = {}
    for e in engines:
        den = Denoiser.from_pretrained(model, engine=e)
        out[e] = float(np.mean([psnr_uint8(c, den(n)) for c, n in tqdm(pairs, desc=f"quality {e}", leave=False)]))
    if "reference" in out:
        out = {e: {"psnr": v, "delta_vs_reference": v - out["reference"]} for e, v in out.items()}
    return {"data": str(folder), "condition": condition, "images": len(pairs), "engines": out}


def markdown(report: dict) -> str:
    m, peak = report["machine"], report["peak_gflops"]
    isa = ", ".join(f for f, on in m.get("isa", {}).items() if on) or "not reported"
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores (ISA: {isa}), torch {m['torch']} "
             f"({m['torch_threads']} threads); "
             f"measured matmul peak {peak['fp32']:.0f} GFLOP/s fp32, {peak['bf16']:.0f} GFLOP/s bf16"
             + (f", {peak['int8']:.0f} GOP/s int8 (ONNX Runtime)" if "int8" in peak else "") + ". "
             f"Model: {report['model']}"
             + (f" (weights sha256 `{report['weights_sha256'][:12]}`)" if report.get("weights_sha256") else "")
             + (f", tile {report['tile_size']}" if report.get("tile_size") else ", each engine's default tile")
             + f", median of {report['repeats']} runs."
             + (f" Baseline: {report['baseline']}"
                + (f" (weights sha256 `{report['baseline_weights_sha256'][:12]}`)"
                   if report.get("baseline_weights_sha256") else "")
                + ", timed alternately with the model in one process (same engine, size and tile):"
                " baseline s is its median there, time / baseline the median ratio of the paired calls"
                " (pairs: how many)."
                if report.get("baseline") else ""),
             "",
             "| size | engine | tile | median s | MP/s | × reference | GFLOP/s | % of peak | load s | first call s "
             "| peak RSS MB |" + (" baseline s | time / baseline | pairs |" if report.get("baseline") else ""),
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
             + (" ---: | ---: | ---: |" if report.get("baseline") else "")]
    for r in report["results"]:
        tile = r.get("tile_size", report.get("tile_size")) if r["engine"] != "opencv-nlm" else None
        lines.append(f"| {r['width']}×{r['height']} | {r['engine']} | {tile or '–'} | {r['median_s']:.3f} | {r['mp_per_s']:.2f} | "
                     f"{r.get('speedup_vs_reference', float('nan')):.2f} | {r.get('gflops', float('nan')):.0f} | "
                     f"{r.get('percent_of_peak', float('nan')):.0f} | "
                     f"{r.get('load_s', float('nan')):.2f} | {r.get('first_call_s', float('nan')):.2f} | "
                     f"{r['peak_rss_mb']:.0f} |"
                     + (f" {r.get('baseline_median_s', float('nan')):.3f} | {r.get('time_vs_baseline', float('nan')):.3f} |"
                        f" {r.get('pairs', '–')} |" if report.get("baseline") else ""))
    for q in report.get("quality", []):
        lines += ["", f"Quality on {q['data']} `{q['condition']}` ({q['images']} images), mean PSNR:", "",
                  "| engine | PSNR dB | Δ vs reference dB |", "| --- | ---: | ---: |"]
        lines += [f"| {e} | {v['psnr']:.3f} | {v['delta_vs_reference']:+.3f} |" for e, v in q["engines"].items()]
    sweep = report.get("tile_sweep")
    if sweep:
        r0 = sweep[0]
        lines += ["", f"Tile size × threads, {r0['width']}×{r0['height']}, engine `{r0['engine']}`:", "",
                  "| tile | threads | median s | MP/s | peak RSS MB |", "| ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {r['tile_size']} | {r['threads']} | {r['median_s']:.3f} | {r['mp_per_s']:.2f} | "
                  f"{r['peak_rss_mb']:.0f} |" for r in sweep]
    return "\n".join(lines).replace("| nan |", "| – |").replace(" nan |", " – |")


def parse_sizes(text: str) -> list[tuple[int, int]]:
    try:
        return [tuple(int(v) for v in s.lower().split("x")) for s in text.split(",")]  # type: ignore[misc]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes look like 512x512,2040x1080, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model folder or Hub repo id (default: shipped)")
    p.add_argument("--baseline", default=None, metavar="MODEL",
                   help="also time this model ('shipped', a folder or Hub repo id) against --model, the two "
                   "called alternately in one process on the same engine, size and tile, and report the "
                   "time ratio: a new model against the one it replaces, measured in one run")
    p.add_argument("--pair-seconds", type=float, default=PAIR_SECONDS,
                   help="with --baseline: pair the two models' calls until they took this long (at least "
                   f"--repeats pairs, at most {PAIR_MAX}; default %(default)s): a few pairs of a fast call "
                   "do not give a steady ratio")
    p.add_argument("--sizes", type=parse_sizes, default=parse_sizes(DEFAULT_SIZES), help=f"default {DEFAULT_SIZES}")
    from .options import ENGINES

    p.add_argument("--engines", default=",".join(default_engines()),
                   help=f"comma-separated, of {', '.join(ENGINES)} (default here: %(default)s; bf16 only "
                   "where the CPU computes it natively, onnxruntime where installed; int8 needs a --model "
                   "folder with an int8 graph, its GOP/s read against ONNX Runtime's int8 matmul peak)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tile-size", type=int, default=None, help="default: each engine's own (" + TILE_RULE + ")")
    p.add_argument("--no-nlm", action="store_true", help="skip OpenCV non-local means")
    p.add_argument("--quality-data", action="append", default=[], metavar="DIR",
                   help="also compare the engines' PSNR against reference on this folder: a clean set gets the "
                   "benchmark's 'mixed' condition (e.g. ../shared/data/CBSD68), a folder of X_real/X_mean "
                   "pairs is used as it is (e.g. ../shared/data/real/PolyU); repeatable")
    p.add_argument("--quality-limit", type=int, default=None, help="first N images of each --quality-data")
    p.add_argument("--tile-sweep", default=None, metavar="TILES",
                   help="also time these tile sizes (e.g. 256,512,768,1024) at the second --sizes entry")
    p.add_argument("--sweep-threads", default=None, help="thread counts for --tile-sweep (default: torch's)")
    p.add_argument("--sweep-engine", default="bf16", help="engine for --tile-sweep")
    p.add_argument("--out", default="docs/bench/speed", help="writes OUT.json and OUT.md")


def main_from_args(args: argparse.Namespace) -> int:
    engines = args.engines.split(",")
    report = run(args.model, args.sizes, engines, args.repeats, args.tile_size, not args.no_nlm, args.baseline,
                 args.pair_seconds)
    if args.quality_data:
        report["quality"] = [engine_quality(args.model, d, ["reference"] + [e for e in engines if e != "reference"],
                                            args.quality_limit) for d in args.quality_data]
    if args.tile_sweep:
        import torch

        threads = [int(t) for t in args.sweep_threads.split(",")] if args.sweep_threads else [torch.get_num_threads()]
        report["tile_sweep"] = tile_sweep(args.model, args.sweep_engine, args.sizes[min(1, len(args.sizes) - 1)],
                                          [int(t) for t in args.tile_sweep.split(",")], threads, args.repeats)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    md = markdown(report)
    out.with_suffix(".md").write_text(md + "\n")
    print(md)
    return 0
