"""How long `cleanvision --help` and each subcommand's --help take, each in a fresh process.

    python scripts/help_time.py [--runs 7]

A benchmark, not a test: the time depends on the machine and its load, so it is measured and
printed (median of --runs, with the fastest and slowest run), beside the CPU it ran on. Help
should come back in well under half a second: building the parser imports no torch, numpy,
OpenCV or ONNX (tests/test_cli.py checks that behaviour).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cleanvision.hardware import cpu_name  # noqa: E402 - light: /proc/cpuinfo only

SUBCOMMANDS = ([], ["denoise"], ["degrade"], ["push"], ["export"], ["bench"], ["eval"])


def command() -> list[str]:
    """The installed console script when there is one (what a user types), else ``python -m``."""
    exe = Path(sys.executable).with_name("cleanvision")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "cleanvision.cli"]


def time_help(sub: list[str], runs: int) -> list[float]:
    """Wall seconds of ``cleanvision [sub] --help`` in ``runs`` fresh processes."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([*command(), *sub, "--help"], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7, help="fresh processes per command (default 7)")
    args = ap.parse_args()
    print(f"CPU: {cpu_name()} ({os.cpu_count()} logical cores); load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.runs} runs each; {' '.join(command())}\n")
    print("| command | median s | min s | max s |")
    print("| --- | ---: | ---: | ---: |")
    for sub in SUBCOMMANDS:
        t = time_help(sub, args.runs)
        print(f"| `cleanvision {' '.join([*sub, '--help'])}` | {statistics.median(t):.3f} | {min(t):.3f} | "
              f"{max(t):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
