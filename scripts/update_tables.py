#!/usr/bin/env python3
"""Regenerate every generated block of the documents from the files they are made from.

    python scripts/update_tables.py            # rewrite the marked blocks
    python scripts/update_tables.py --check    # exit 1 if a document is out of date (CI)

Only text between markers is touched:

* ``<!-- bench:SET start -->`` ... ``<!-- bench:SET end -->`` (Markdown): replaced by the table
  of ``docs/bench/SET/results.json``, as ``cleanvision eval`` writes it (the same text as
  ``docs/bench/SET/results.md``).
* ``<!-- headline start -->`` ... ``<!-- headline end -->``: the one results table of the
  README and the model card: CBSD68's seven frozen conditions, the two real-photo sets and the
  paper protocol at σ 25 against the published anchors (from their ``results.json``), and one
  512×512 speed line naming its CPU (from ``docs/bench/speed_*.json``).
* ``<!-- include:NAME start -->`` ... ``<!-- include:NAME end -->``: replaced by the text of
  ``docs/bench/NAME`` (the speed and load-test tables that ``cleanvision bench`` and
  ``scripts/load_test.py`` write).
* ``<!-- training start -->`` ... ``<!-- training end -->``: a table per training stage of the
  shipped weights, and ``<!-- training-summary start/end -->`` a paragraph of their totals, both
  from ``cleanvision/weights/default/training_info.json``.
* ``<!-- help:SCRIPT start -->`` ... ``<!-- help:SCRIPT end -->``: ``python SCRIPT --help``, so
  the documented flags are the script's own.
* ``# bench:model-index start`` ... ``# bench:model-index end`` (YAML comments inside the
  front matter of a model card): replaced by a ``model-index`` block (Hugging Face's
  evaluation-results metadata) with the PSNR / SSIM of the card's model on every set (and
  headline condition) that has a marked table in the same document.

A document without markers, or a marked set without JSON, is reported and left as it is.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cleanvision.bench import JSON_NAME, model_keys, render_markdown, training_stages  # noqa: E402

DEFAULT_DOCS = ("README.md", "model_card.md", "docs/benchmark.md", "docs/speed.md", "docs/training.md",
                "docs/training_history.md")
DEFAULT_MODEL_NAME = "cleanvision-dncnn"
BLOCK = re.compile(r"(<!-- bench:(?P<name>[A-Za-z0-9_.-]+) start -->)(?P<body>.*?)(<!-- bench:(?P=name) end -->)",
                   re.S)
YAML_START, YAML_END = "# bench:model-index start", "# bench:model-index end"
PLACEHOLDER = "(not generated yet)"


def front_matter_span(text: str) -> tuple[int, int] | None:
    """(start, end) character offsets of the YAML front matter body, or None."""
    if not text.startswith("---\n"):
        return None
    end = text.find("\n---", 3)
    return None if end < 0 else (4, end + 1)


def blocks(text: str) -> list[re.Match]:
    return list(BLOCK.finditer(text))


def load_json(bench_dir: Path, name: str) -> dict | None:
    p = bench_dir / name / JSON_NAME
    return json.loads(p.read_text()) if p.is_file() else None


def block_body(doc: dict, source: str) -> str:
    return "\n" + render_markdown(doc, source)


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar


def model_index_entries(docs: list, model_key: str | None = None) -> list[dict]:
    """One entry per (set, condition): the card's model's mean PSNR and SSIM, rounded as in the tables.
    ``docs``: results JSONs (every condition), or (JSON, conditions) pairs (only those)."""
    entries = []
    for item in docs:
        doc, only = item if isinstance(item, tuple) else (item, None)
        keys = model_keys(doc)
        key = model_key or (keys[0] if keys else None)
        if key is None:
            continue
        for cond, info in doc["conditions"].items():
            if only is not None and cond not in only:
                continue
            r = doc["results"].get(cond, {}).get(key)
            if not r:
                continue
            if info["protocol"] == "paper":
                crop = doc["paper_protocol"]["crop"]
                title = f"Gaussian σ={info['sigma']:g}, paper protocol" + (f", {crop}×{crop} centre crops"
                                                                          if crop else "")
                config = f"paper-sigma{info['sigma']:g}"
            elif info["protocol"] == "real":
                title, config = "real camera noise (noisy photo vs mean of many shots)", "real"
            elif info["protocol"] == "undamaged":
                title, config = "undamaged photo in (output vs the photo itself)", cond
            else:
                title, config = f"{cond}, frozen benchmark seed {doc['bench']['seed']}", cond
            entries.append({"set": doc["set"], "title": title, "config": config,
                            "psnr": round(r["psnr"], 2), "ssim": round(r["ssim"], 4)})
    return entries


def render_model_index(docs: list, model_name: str, model_key: str | None = None) -> str:
    lines = ["model-index:", f"- name: {_q(model_name)}", "  results:"]
    for e in model_index_entries(docs, model_key):
        lines += ["  - task:",
                  "      type: image-to-image",
                  "      name: Image restoration",
                  "    dataset:",
                  f"      name: {_q(e['set'] + ' (' + e['title'] + ')')}",
                  f"      type: {_q(e['set'])}",
                  f"      config: {_q(e['config'])}",
                  "      split: test",
                  "    metrics:",
                  "    - type: psnr",
                  f"      value: {e['psnr']:.2f}",
                  "      name: PSNR (dB)",
                  "    - type: ssim",
                  f"      value: {e['ssim']:.4f}",
                  "      name: SSIM"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ training records

SHIPPED_INFO = ROOT / "cleanvision" / "weights" / "default" / "training_info.json"


def degradations(info: dict) -> str:
    """What a stage trained on (records from before real-photo damage had only the synthetic mixture)."""
    d = info.get("degradations")
    if not d:
        return "the synthetic mixture (`cleanvision.noise`)"
    return (f"{d['real_fraction']:.0%} of patches with real-photo damage (`cleanvision.real_noise`: correlated, "
            f"camera and JPEG), the rest the synthetic mixture; {d['grey_fraction']:.0%} made grey first"
            + (f"; {d['clean_fraction']:.0%} left undamaged" if d.get("clean_fraction") else "")
            + ("; the noise-level map counts JPEG-only damage (its robust std)" if d.get("map_jpeg_level") else ""))


def stage_table(info: dict) -> str:
    hours = info["wall_seconds"] / 3600
    # records older than "stopped_by" say only whether the step limit was reached
    stopped = info.get("stopped_by", "step limit" if info.get("finished") else "time budget")
    avg = info.get("averaged_with")  # scripts/average_weights.py
    data = info["train_data"] if isinstance(info["train_data"], str) else ", ".join(info["train_data"])
    rows = [
        ("command", f"`{info['command']}`"),
        ("data", f"{data} ({info['train_images']} images; {info['validation_images']} held-out crops for validation)"),
        ("steps", f"{info['steps']:,} optimizer steps, {info['patches_seen']:,} patches"),
        ("wall time", f"{hours:.2f} h" + ("" if stopped == "step limit" else f" (stopped by the {stopped})")),
        ("hardware", f"{info['hardware']}, {info['processes']} process(es), {info['mixed_precision']} autocast"),
        ("degradations", degradations(info)),
        ("validation" + (" (this run, before averaging)" if avg else ""),
         f"PSNR {info.get('val/psnr', float('nan')):.2f} dB, SSIM {info.get('val/ssim', float('nan')):.4f} "
         "(held-out crops, benchmark `mixed` noise ranges)"),
    ]
    if avg:
        w = avg["weight_of_this_run"]
        rows.append(("weights", f"{w:g} × this run's (sha256 `{avg['this_run_sha256']}`) + {1 - w:g} × "
                                f"`{avg['path']}`'s (sha256 `{avg['other_sha256']}`), tensor by tensor: `{avg['command']}`"))
    return "\n".join(["| | |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in rows])


def training_block(info: dict) -> str:
    """A table of each training stage (a run started ``--init_from`` another records it)."""
    stages = training_stages(info)
    if len(stages) == 1:
        return stage_table(stages[0])
    return "\n\n".join(f"Stage {i + 1} of {len(stages)}:\n\n" + stage_table(s) for i, s in enumerate(stages))


def training_summary(info: dict) -> str:
    """The shipped weights' training in one paragraph: what the model card says about them."""
    stages = training_stages(info)
    steps, patches = sum(s["steps"] for s in stages), sum(s["patches_seen"] for s in stages)
    hours = sum(s["wall_seconds"] for s in stages) / 3600
    cpus = sorted({re.sub(r" \(\d+ cores\)$", "", s["hardware"]) for s in stages})
    last = stages[-1]
    text = (f"{len(stages)} successive runs of `train_accelerate.py`, each starting from the weights of the one "
            f"before: {steps:,} optimizer steps of {last['patches_seen'] // max(1, last['steps']):,} patches, "
            f"{patches / 1e6:.2f} M random 64×64 crops in all, {hours:.1f} hours on 2-core CPUs "
            f"({'; '.join(cpus)}), no GPU. The network has {_parameters():,} parameters. ")
    grown = next((i for i, s in enumerate(stages) if "--noise_map" in s["command"]), None)
    if grown is not None:
        g = stages[grown]
        text += (f"Run {grown + 1} gave the blind network of the runs before it a noise-level map input, its new "
                 f"weights at zero so that it started as exactly that network, and a noise-level estimator "
                 f"({g['steps']:,} steps, {g['wall_seconds'] / 3600:.1f} hours). ")
    if "--train_only estimator" in last["command"]:
        text += ("The last run fitted only the estimator, the denoiser frozen"
                 + (", and `scripts/fit_level_curve.py` then fitted the level curve that turns the estimator's "
                    "reading into the level the denoiser restores best with, on photos training held out"
                    if json.loads(SHIPPED_INFO.with_name("config.json").read_text()).get("level_curve") else "")
                 + ". ")
    if last.get("averaged_with"):
        a = last["averaged_with"]
        text += (f"The shipped weights are the mean, tensor by tensor, of the last run's final weights "
                 f"(weight {a['weight_of_this_run']:g}) and the run before it's "
                 f"(`{a['command']}`). ")
    text += f"Last run: `{last['command']}`."
    return text


def _parameters() -> int:
    """Parameters of the shipped weights (not BatchNorm's running statistics), counted from the file."""
    from math import prod

    from safetensors import safe_open

    with safe_open(str(SHIPPED_INFO.with_name("model.safetensors")), "pt") as f:
        return sum(prod(f.get_slice(k).get_shape()) for k in f.keys()
                   if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))


def help_text(script: str) -> str:
    """``python SCRIPT --help`` at a fixed width, so the document shows the script's own flags."""
    import subprocess

    env = {**os.environ, "COLUMNS": "100"}
    r = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=120)
    if r.returncode:
        raise RuntimeError(f"{script} --help failed: {r.stderr[-500:]}")
    return "```text\n" + r.stdout.rstrip() + "\n```"


# ------------------------------------------------------------------ the headline table

#: (set, condition, what it is): the rows of the README's and the model card's one table.
HEADLINE = (
    ("CBSD68", "gauss25", "Gaussian noise, σ 25"),
    ("CBSD68", "gauss50", "Gaussian noise, σ 50"),
    ("CBSD68", "sp10", "salt-and-pepper, 10 % of pixels"),
    ("CBSD68", "speckle", "speckle, variance 0.04"),
    ("CBSD68", "scribble", "3–6 black strokes"),
    ("CBSD68", "all4", "all four at once"),
    ("CBSD68", "mixed", "1–3 of the four, random strengths"),
    ("PolyU", "real", "real camera noise, 100 photos"),
    ("CC15", "real", "real camera noise, 15 photos"),
    ("CBSD68", "paper25", "Gaussian σ 25, the papers' protocol"),
)
#: The speed records the headline's speed line quotes: one CPU of each vendor the machines offer,
#: so no claim rests on one vendor's units.
HEADLINE_SPEED = ("speed_amd_avx512.json", "speed_intel_amx.json")


def _best_other(doc: dict, cond: str) -> str:
    """The best method other than the model and the input, run on every image of the set."""
    res, methods = doc["results"].get(cond, {}), doc["methods"]
    others = [(r["psnr"], methods[k]["label"]) for k, r in res.items()
              if k != "noisy" and not k.startswith("model:") and not methods.get(k, {}).get("limit")]
    quoted = [(q["psnr"][cond], f"{q['method']} (published)") for q in doc.get("quoted", []) if cond in q["psnr"]]
    best = sorted(others, reverse=True)[:1] + sorted(quoted, reverse=True)
    return "; ".join(f"{v:.2f} {label}" for v, label in best) or "–"


def headline_table(bench_dir: Path) -> tuple[str, list[tuple[dict, set[str]]]] | None:
    """The table, and the (results JSON, conditions) it used, for the model-index; None when a
    set's JSON is missing."""
    docs: dict[str, dict] = {}
    for name in sorted({s for s, _, _ in HEADLINE}):
        doc = load_json(bench_dir, name)
        if doc is None:
            return None
        docs[name] = doc
    lines = ["| damage | set | noisy input | CleanVision | best other method measured (or published) |",
             "| --- | --- | ---: | ---: | --- |"]
    used: dict[str, set[str]] = {}
    for name, cond, what in HEADLINE:
        doc = docs[name]
        res = doc["results"][cond]
        key = model_keys(doc)[0]
        lines.append(f"| {what} | {name} | {res['noisy']['psnr']:.2f} | {res[key]['psnr']:.2f} | "
                     f"{_best_other(doc, cond)} |")
        used.setdefault(name, set()).add(cond)
    lines.append("")
    lines.append("Mean PSNR in dB (higher is better). " + _speed_line(bench_dir))
    return "\n".join(lines), [(docs[n], c) for n, c in used.items()]


def _speed_line(bench_dir: Path) -> str:
    parts, nlm = [], ""
    for name in HEADLINE_SPEED:
        path = bench_dir / name
        if not path.is_file():
            continue
        s = json.loads(path.read_text())
        by = {r["engine"]: r for r in s["results"] if (r["width"], r["height"]) == (512, 512)}
        isa = [k for k, v in s["machine"]["isa"].items() if v and k.startswith(("amx_bf16", "avx512_bf16"))][:1]
        fastest = min((r for e, r in by.items() if e != "opencv-nlm"), key=lambda r: r["median_s"])
        cpu = s["machine"]["cpu"].replace("(R)", "").replace("(TM)", "")
        parts.append(f"{fastest['median_s']:.2f} s on {cpu} with "
                     f"{', '.join(isa).upper().replace('_', '-')} (engine `{fastest['engine']}`, "
                     f"{s['machine']['torch_threads']} threads)")
        if "opencv-nlm" in by and not nlm:
            nlm = f"; OpenCV's non-local means takes {by['opencv-nlm']['median_s']:.2f} s on the first"
    if not parts:
        return ""
    return f"Speed: a 512×512 colour photo in {' and '.join(parts)}; `cleanvision bench`, docs/speed.md{nlm}."


GENERATED = re.compile(r"(<!-- (?P<name>training|training-summary|headline|help:[A-Za-z0-9_./-]+) start -->)"
                       r"(?P<body>.*?)(<!-- (?P=name) end -->)", re.S)


def update_generated(text: str, path: Path, bench_dir: Path) -> tuple[str, list[str], list[tuple[dict, set[str]]]]:
    """The training, headline and help blocks; returns the headline's sets for the model-index."""
    report: list[str] = []
    used: list[tuple[dict, set[str]]] = []
    info = json.loads(SHIPPED_INFO.read_text()) if SHIPPED_INFO.is_file() else None

    def fill(m: re.Match) -> str:
        name = m.group("name")
        if name == "headline":
            made = headline_table(bench_dir)
            if made is None:
                report.append(f"{path}: headline: a set's JSON is missing in {bench_dir}; block left as it is")
                return m.group(0)
            body, got = made
            used.extend(got)
        elif name.startswith("help:"):
            body = help_text(name[5:])
        elif info is None:
            report.append(f"{path}: {name}: no {SHIPPED_INFO}; block left as it is")
            return m.group(0)
        else:
            body = training_block(info) if name == "training" else training_summary(info)
        body = "\n" + body + "\n"
        report.append(f"{path}: {name}: {'unchanged' if body == m.group('body') else 'updated'}")
        return m.group(1) + body + m.group(4)

    return GENERATED.sub(fill, text), report, used


INCLUDE = re.compile(r"(<!-- include:(?P<name>[A-Za-z0-9_.-]+) start -->)(?P<body>.*?)(<!-- include:(?P=name) end -->)",
                     re.S)


def update_includes(text: str, path: Path, bench_dir: Path) -> tuple[str, list[str]]:
    """``<!-- include:NAME start/end -->`` blocks get the text of ``bench_dir/NAME`` (speed, load tables)."""
    report: list[str] = []

    def fill(m: re.Match) -> str:
        src = bench_dir / m.group("name")
        if not src.is_file():
            report.append(f"{path}: include:{m.group('name')}: no {src}; block left as it is")
            return m.group(0)
        body = "\n" + src.read_text().rstrip("\n") + "\n"
        report.append(f"{path}: include:{m.group('name')}: {'unchanged' if body == m.group('body') else 'updated'}")
        return m.group(1) + body + m.group(4)

    return INCLUDE.sub(fill, text), report


def update_text(text: str, path: Path, bench_dir: Path, model_name: str = DEFAULT_MODEL_NAME,
                model_key: str | None = None) -> tuple[str, list[str]]:
    """The document with every marked block regenerated, and a report line per block / problem."""
    text, report = update_includes(text, path, bench_dir)
    text, more, used = update_generated(text, path, bench_dir)
    report += more
    found = blocks(text)
    if not found and not more and not INCLUDE.search(text):
        report.append(f"{path}: no generated blocks; left as it is")
    out, pos = [], 0
    for m in found:
        name = m.group("name")
        doc = load_json(bench_dir, name)
        out.append(text[pos:m.start("body")])
        if doc is None:
            report.append(f"{path}: bench:{name}: no {bench_dir / name / JSON_NAME}; block left as it is")
            out.append(m.group("body"))
        else:
            source = os.path.relpath(bench_dir / name / JSON_NAME, path.resolve().parent)
            body = block_body(doc, source)
            out.append(body)
            used.append(doc)
            if doc.get("limit"):
                report.append(f"{path}: bench:{name}: WARNING the JSON is from a --limit {doc['limit']} run")
            report.append(f"{path}: bench:{name}: {'unchanged' if body == m.group('body') else 'updated'}")
        pos = m.end("body")
    out.append(text[pos:])
    text = "".join(out)

    fm = front_matter_span(text)
    if fm is not None:
        head = text[fm[0]:fm[1]]
        i, j = head.find(YAML_START + "\n"), head.find(YAML_END)
        if i < 0 or j < i:
            report.append(f"{path}: front matter has no '{YAML_START}' / '{YAML_END}' lines; model-index "
                          "left as it is")
        elif not used:
            report.append(f"{path}: model-index: no benchmark JSON for the sets of this document; left as it is")
        else:
            outside = head[:i] + head[j:]
            if re.search(r"^model-index\s*:", outside, re.M):
                report.append(f"{path}: a model-index key outside the markers; remove it (left as it is)")
            else:
                body = render_model_index(used, model_name, model_key)
                old = head[i + len(YAML_START) + 1:j]
                a = fm[0] + i + len(YAML_START) + 1
                text = text[:a] + body + text[a + len(old):]
                report.append(f"{path}: model-index: {'unchanged' if body == old else 'updated'}")
    return text, report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("docs", nargs="*", type=Path, help=f"documents (default: {' '.join(DEFAULT_DOCS)})")
    ap.add_argument("--bench-dir", type=Path, default=ROOT / "docs" / "bench",
                    help="folder of <SET>/results.json (default: docs/bench)")
    ap.add_argument("--model-name", default=DEFAULT_MODEL_NAME, help="name in the model-index block")
    ap.add_argument("--model-key", default=None,
                    help="method of the JSON to put in the model-index (default: the first model, e.g. model:shipped)")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a document is out of date")
    args = ap.parse_args(argv)
    docs = args.docs or [ROOT / d for d in DEFAULT_DOCS]
    stale = []
    for path in docs:
        if not path.is_file():
            print(f"{path}: no such file", file=sys.stderr)
            stale.append(path)
            continue
        text = path.read_text()
        new, report = update_text(text, path, args.bench_dir, args.model_name, args.model_key)
        for line in report:
            print(line)
        if new != text:
            stale.append(path)
            if not args.check:
                tmp = path.with_name(path.name + ".part")
                tmp.write_text(new)
                os.replace(tmp, path)
    if args.check and stale:
        print("out of date: " + ", ".join(map(str, stale)) + " (run python scripts/update_tables.py)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
