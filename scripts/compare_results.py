"""Did a new shipped model win? The model rows of every docs/bench set, now against a git revision.

After `scripts/ship_model.py` and a re-benchmark (`cleanvision eval ... --update`), this prints
each set's `model:shipped` PSNR in the working tree beside the committed one, and how many rows
rose or fell, so the keep-or-revert decision reads off one table:

    python scripts/compare_results.py            # against HEAD
    python scripts/compare_results.py --rev 40e8c31
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHOD = "model:shipped"


def model_psnr(results: dict) -> dict[str, float]:
    """condition -> mean PSNR of the shipped model, for the conditions it was measured on."""
    return {cond: row[METHOD]["psnr"] for cond, row in results.get("results", {}).items() if METHOD in row}


def committed(rev: str, path: Path, root: Path) -> dict | None:
    """The file as it was at ``rev`` (None where it did not exist then)."""
    rel = path.relative_to(root).as_posix()
    out = subprocess.run(["git", "show", f"{rev}:{rel}"], cwd=root, capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else None


def compare(rev: str, root: Path = ROOT) -> list[tuple[str, str, float, float]]:
    """(set, condition, PSNR at ``rev``, PSNR now) for every model row measured both times."""
    rows = []
    for path in sorted((root / "docs" / "bench").glob("*/results.json")):
        old = committed(rev, path, root)
        if old is None:
            continue
        new, before = model_psnr(json.loads(path.read_text())), model_psnr(old)
        rows += [(path.parent.name, cond, before[cond], new[cond]) for cond in new if cond in before]
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rev", default="HEAD", help="git revision holding the previous results (default HEAD)")
    args = p.parse_args(argv)
    rows = compare(args.rev)
    if not rows:
        print(f"no model rows to compare against {args.rev}", file=sys.stderr)
        return 1
    print(f"| set | condition | {args.rev} | now | change |\n| --- | --- | ---: | ---: | ---: |")
    for name, cond, before, now in rows:
        print(f"| {name} | `{cond}` | {before:.2f} | {now:.2f} | {now - before:+.2f} |")
    diffs = [now - before for *_, before, now in rows]
    up, down = sum(d > 0.005 for d in diffs), sum(d < -0.005 for d in diffs)
    print(f"\n{len(rows)} rows: {up} better, {down} worse, {len(rows) - up - down} within 0.005 dB; "
          f"mean change {sum(diffs) / len(diffs):+.3f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
