"""A short, bounded load test of the app on loopback (the README's figures come from a longer run)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_concurrent_clients_are_answered_or_rejected(tmp_path):
    out = tmp_path / "load"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "load_test.py"), "--clients", "20", "--seconds", "8",
                        "--size", "64", "--out", str(out)], capture_output=True, text=True, timeout=400)
    report = json.loads(out.with_suffix(".json").read_text())
    assert r.returncode == 0, (r.stdout, r.stderr[-2000:])
    assert report["failed"] == 0 and report["wrong result"] == 0
    assert report["ok"] >= 5 and report["requests"] == report["ok"] + report["rejected"]
    assert report["app_alive_after"] and report["app_correct_after"]
    assert report["app_peak_rss_mb"] < 2000
