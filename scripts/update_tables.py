#!/usr/bin/env python3
"""Regenerate the benchmark tables in README.md and model_card.md from the benchmark JSON.

    python scripts/update_tables.py            # rewrite the marked blocks
    python scripts/update_tables.py --check    # exit 1 if a document is out of date (CI)

Only text between markers is touched:

* ``<!-- bench:SET start -->`` ... ``<!-- bench:SET end -->`` (Markdown): replaced by the table
  of ``docs/bench/SET/results.json``, as ``cleanvision eval`` writes it (the same text as
  ``docs/bench/SET/results.md``).
* ``<!-- include:NAME start -->`` ... ``<!-- include:NAME end -->``: replaced by the text of
  ``docs/bench/NAME`` (the speed and load-test tables that ``cleanvision bench`` and
  ``scripts/load_test.py`` write).
* ``# bench:model-index start`` ... ``# bench:model-index end`` (YAML comments inside the
  front matter of a model card): replaced by a ``model-index`` block (Hugging Face's
  evaluation-results metadata) with the PSNR / SSIM of the card's model on every set that has
  a marked table in the same document.

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

from cleanvision.bench import JSON_NAME, model_keys, render_markdown  # noqa: E402

DEFAULT_DOCS = ("README.md", "model_card.md")
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


def model_index_entries(docs: list[dict], model_key: str | None = None) -> list[dict]:
    """One entry per (set, condition): the card's model's mean PSNR and SSIM, rounded as in the tables."""
    entries = []
    for doc in docs:
        keys = model_keys(doc)
        key = model_key or (keys[0] if keys else None)
        if key is None:
            continue
        for cond, info in doc["conditions"].items():
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


def render_model_index(docs: list[dict], model_name: str, model_key: str | None = None) -> str:
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
    found = blocks(text)
    if not found:
        report.append(f"{path}: no <!-- bench:SET start/end --> markers; left as it is")
    out, pos, used = [], 0, []
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
