"""Rendering benchmark results: the markdown tables README.md and model_card.md show, and the figure."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .sets import FROZEN_CONDITIONS, UNDAMAGED

def pick_window(clean: np.ndarray, size: int, noisy: np.ndarray | None = None) -> tuple[int, int]:
    """Top-left corner of the ``size``×``size`` window with the most texture plus damage (deterministic):
    mean |Laplacian| of the clean image plus mean |noisy − clean|, so scribbles land in the crop."""
    h, w = clean.shape[:2]
    size = min(size, h, w)

    def grey(x):
        x = x.astype(np.float64)
        return x if x.ndim == 2 else x.mean(axis=2)

    score = np.abs(cv2.Laplacian(grey(clean), cv2.CV_64F))
    if noisy is not None:
        score = score + np.abs(grey(noisy) - grey(clean))
    ii = cv2.integral(score)
    sums = ii[size:, size:] - ii[:-size, size:] - ii[size:, :-size] + ii[:-size, :-size]
    step = max(1, size // 4)
    sub = sums[::step, ::step]
    y, x = np.unravel_index(int(np.argmax(sub)), sub.shape)
    return int(y * step), int(x * step)


def _tile(img: np.ndarray | None, size: int, zoom: int, caption: str, sub: str) -> np.ndarray:
    bar = 34
    tile = np.full((size * zoom + bar, size * zoom, 3), 255, np.uint8)
    if img is not None:
        rgb = img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)
        tile[:size * zoom] = cv2.resize(rgb, (size * zoom, size * zoom), interpolation=cv2.INTER_NEAREST)
    else:
        tile[:size * zoom] = 235
        cv2.putText(tile, "not run", (8, size * zoom // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (90, 90, 90), 1,
                    cv2.LINE_AA)
    cv2.putText(tile, caption[:34], (3, size * zoom + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(tile, sub, (3, size * zoom + 28), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return tile


def make_figure(crops: dict, methods: list, path: Path, size: int, zoom: int) -> Path | None:
    """Rows: (image, condition); columns: clean, noisy, then each method; PSNR under each crop."""
    if not crops:
        return None
    cols = [m for m in methods if m.key != "noisy"]
    rows = []
    for (name, cond), c in crops.items():
        tiles = [_tile(c["clean"], size, zoom, f"clean {Path(name).stem}", cond),
                 _tile(c["noisy"], size, zoom, "noisy input", f"{c['psnr'].get('noisy', float('nan')):.2f} dB")]
        for m in cols:
            out = c["out"].get(m.key)
            sub = f"{c['psnr'][m.key]:.2f} dB (whole image)" if m.key in c["psnr"] else "-"
            tiles.append(_tile(out, size, zoom, m.label, sub))
        rows.append(np.concatenate([np.concatenate([t, np.full((t.shape[0], 4, 3), 255, np.uint8)], axis=1)
                                    for t in tiles], axis=1))
    grid = np.concatenate([np.concatenate([r, np.full((6, r.shape[1], 3), 255, np.uint8)], axis=0)
                           for r in rows], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError("cannot encode the figure")
    path.write_bytes(buf.tobytes())
    return path



def _cell(r: dict | None, ssim: bool = True) -> str:
    if not r:
        return "—"
    return f"{r['psnr']:.2f} / {r['ssim']:.4f}" if ssim else f"{r['psnr']:.2f}"


def times_note(doc: dict, methods: dict) -> str:
    """Which CPU each s/MP was measured on: one machine in one sentence, else each machine with
    the methods timed on it (``--update`` can keep rows timed on another machine)."""
    env = doc["environment"]

    def machine(cpu: object, threads: object) -> str:
        return f"{cpu}, {threads} thread{'' if threads == 1 else 's'}"

    groups: dict[str, list[str]] = {}
    for key, t in doc["timing"].items():
        if t.get("s_per_mp") is not None and key in methods:
            where = machine(t.get("cpu", env.get("cpu")), t.get("torch_threads", env.get("torch_threads")))
            groups.setdefault(where, []).append(methods[key]["label"])
    software = f"torch {env.get('torch')}, OpenCV {env.get('opencv')}"
    if len(groups) <= 1:
        where = next(iter(groups), machine(env.get("cpu"), env.get("torch_threads")))
        return f"Times: {where} ({env.get('cores')} cores), {software}; one run, shared machine."
    return ("Times, each measured on its own machine: " + "; ".join(f"{', '.join(labels)} on {where}"
                                                                  for where, labels in groups.items())
            + f"; {software} in the latest run; one run each, shared machines.")


def _cond_title(cond: str, info: dict) -> str:
    if info.get("protocol") == "real":
        return "real noise"
    return f"σ = {info['sigma']:g}" if info.get("protocol") == "paper" else f"`{cond}`"


def model_keys(doc: dict) -> list[str]:
    return [k for k in doc["methods"] if k.startswith("model:")]


def render_markdown(doc: dict, source: str | None = None, tool: str = "scripts/update_tables.py") -> str:
    """The results table of one set (what README.md and model_card.md show between the markers)."""
    res, conds, methods = doc["results"], doc["conditions"], doc["methods"]
    frozen = [c for c, i in conds.items() if i["protocol"] == "frozen"]
    seed_conds = [c for c in frozen if c in FROZEN_CONDITIONS]
    extended = [c for c in frozen if c not in FROZEN_CONDITIONS]
    real = [c for c, i in conds.items() if i["protocol"] == "real"]
    undamaged = [c for c, i in conds.items() if i["protocol"] == UNDAMAGED]
    paper = [c for c, i in conds.items() if i["protocol"] == "paper"]
    n, total = len(doc["images"]), doc["images_total"]
    images = f"{n} images" if n == total else f"first {n} of {total} images"
    lines = []
    if source:
        lines.append(f"<!-- generated by {tool} from {source}; do not edit by hand -->")
    t = doc["timing"]

    def spm(key: str) -> str:
        v = t.get(key, {}).get("s_per_mp")
        return "—" if v is None else f"{v:.2g}" if v < 1 else f"{v:.1f}"

    def table(title: str, cols: list[str], timed: bool) -> None:
        lines.extend([title, "", "| method | " + " | ".join(_cond_title(c, conds[c]) for c in cols)
                      + (" | s/MP |" if timed else " |"),
                      "| --- | " + " | ".join("---:" for _ in cols) + (" | ---: |" if timed else " |")])
        for key, m in methods.items():
            if any(key in res[c] for c in cols):
                lines.append(f"| {m['label']} | " + " | ".join(_cell(res[c].get(key)) for c in cols)
                             + (f" | {spm(key)} |" if timed else " |"))
        for q in doc.get("quoted", []):
            if set(q["psnr"]) & set(cols):
                lines.append(f"| {q['method']} (quoted from paper) | "
                             + " | ".join(f"{q['psnr'][c]:.2f}" if c in q["psnr"] else "—" for c in cols)
                             + (" | — |" if timed else " |"))
        lines.append("")

    seed = doc['bench']['seed']
    if seed_conds:
        table(f"**{doc['set']}** ({images}), frozen benchmark (`make_bench.py`, seed {seed}): "
              "mean PSNR (dB) / SSIM; s/MP = seconds per megapixel.", seed_conds, True)
    if extended:
        table(f"**{doc['set']}** ({images}), damage real photos carry (`make_bench.py` extended conditions, "
              f"seed {seed}): mean PSNR (dB) / SSIM; s/MP = seconds per megapixel.", extended, True)
    if real:
        pairs = f"{n} pairs" if n == total else f"first {n} of {total} pairs"
        table(f"**{doc['set']}** ({pairs} of a real noisy photo and its ground truth, the mean of many shots): "
              "mean PSNR (dB) / SSIM; s/MP = seconds per megapixel.", real, True)
    if undamaged:
        table(f"**{doc['set']}** ({images}), undamaged: the clean photo itself as input, mean PSNR (dB) / SSIM "
              "of the output against it (how much a method changes a photo that needed nothing; higher = "
              "less changed); s/MP = seconds per megapixel.", undamaged, True)
    if paper:
        crop = doc["paper_protocol"]["crop"]
        where = f"{crop}×{crop} centre crops" if crop else "whole images"
        grey = " grey images in, grey out;" if doc.get("grey") else ""
        table(f"**{doc['set']}**, paper protocol (float Gaussian noise, not clipped, `np.random.seed(0)` per "
              f"image;{grey} {where}): mean PSNR (dB) / SSIM.", paper, False)
    notes = []
    for key, m in methods.items():
        if m.get("limit") and model_keys(doc):
            mk = model_keys(doc)[0]
            cmp = []
            for c in frozen + real + undamaged + paper:
                sub = [v for name, v in res[c].get(mk, {}).get("per_image", {}).items()
                       if name in res[c].get(key, {}).get("per_image", {})]
                if sub and key in res[c]:
                    cmp.append(f"{_cond_title(c, conds[c])} {np.mean([v['psnr'] for v in sub]):.2f}")
            notes.append(f"BM3D runs on the first {m['limit']} image{'s' if m['limit'] > 1 else ''} only (it is "
                         f"slow); on those images {methods[mk]['label']} scores " + ", ".join(cmp) + " dB.")
    if doc.get("quoted"):
        notes.append("Quoted rows: " + "; ".join(f"{q['method']}: {q['source']}" for q in doc["quoted"])
                     + ". PSNR only, as published.")
    env = doc["environment"]
    mk = model_keys(doc)
    if mk:
        mi = methods[mk[0]]
        w = mi.get("weights_sha256")
        tr = mi.get("training") or {}
        steps = tr.get("total_steps", tr.get("steps"))
        stages = f" in {tr['stages']} stages" if tr.get("stages") else ""
        notes.append(f"{mi['label']}: engine `{mi.get('engine')}` on {mi.get('device')}"
                     + (f", weights sha256 `{w[:12]}`" if w else "")
                     + (f", {steps:,} training steps{stages}" if steps else "") + ".")
    notes.append(times_note(doc, methods))
    if frozen or real or undamaged:
        notes.append("Median, blur and NLM take 8-bit input, so they run on the frozen conditions, real "
                     "and undamaged photos only" + ("; NLM h 5 (for the weak noise of real photos) on real photos only."
                                      if "nlm5" in methods else "."))
    lines += [f"- {x}" for x in notes]
    return "\n".join(lines).rstrip() + "\n"


