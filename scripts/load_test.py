#!/usr/bin/env python
"""Load test of the web app on loopback: N concurrent API clients for a bounded time.

    python scripts/load_test.py [--clients 8] [--seconds 120] [--size 512] [--out docs/bench/load]

Starts ``app/app.py`` as its own process on 127.0.0.1 (a free port), then N threads each send
``/restore`` requests (scikit-image's astronaut at --size px with Gaussian σ = 25) until the
time is up. Every request must be answered with the correct restoration (what the same model
gives in this process, to ±1 grey level) or clearly rejected (queue full); anything else is a
failure. Reports
requests, rejections, failures, p50/p95 latency, the app's peak resident memory (VmHWM) and
whether it is still serving afterwards. Only loopback is ever contacted; loops are bounded in
count and time.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MAX_REQUESTS_PER_CLIENT = 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with code {proc.returncode} before serving")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the app did not answer on {url} within {timeout:.0f} s")


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Ask the app to exit; kill it if it has not within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(clients: int, seconds: float, size: int) -> dict:
    import cv2
    from gradio_client import Client, handle_file
    from skimage import data

    from cleanvision.image_io import read_image, write_image
    from cleanvision.noise import add_gaussian_noise

    from cleanvision import Denoiser

    clean = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    noisy = add_gaussian_noise(clean, 25, rng=0)
    expected = Denoiser.from_pretrained()(noisy)  # what the app must answer (same model, same input)

    def correct(path: str) -> bool:
        out = read_image(path)
        return bool(out.shape == expected.shape and np.abs(out.astype(int) - expected).max() <= 1)
    tmp = Path(tempfile.mkdtemp(prefix="cleanvision-load-"))
    src = write_image(tmp / "noisy.png", noisy)

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "app" / "app.py"), "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    results: list[dict] = []
    lock = threading.Lock()
    try:
        wait_up(url, proc)
        end = time.time() + seconds

        def client_loop(i: int) -> None:
            client = Client(url, verbose=False)
            for _ in range(MAX_REQUESTS_PER_CLIENT):
                if time.time() >= end:
                    return
                t0 = time.perf_counter()
                rec = {"client": i}
                try:
                    _, download, _ = client.predict(handle_file(str(src)), api_name="/restore")
                    rec["outcome"] = "ok" if correct(download) else "wrong result"
                except Exception as e:  # noqa: BLE001 - classify whatever the client raises
                    msg = str(e)
                    rec["outcome"] = "rejected" if "queue" in msg.lower() and "full" in msg.lower() else "failed"
                    rec["error"] = msg[:200]
                    if rec["outcome"] == "rejected":
                        time.sleep(0.5)  # back off like a real client would
                rec["latency_s"] = time.perf_counter() - t0
                with lock:
                    results.append(rec)

        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=seconds + 600)
        alive = proc.poll() is None
        after = None
        if alive:
            _, download, _ = Client(url, verbose=False).predict(handle_file(str(src)), api_name="/restore")
            after = correct(download)
        rss = peak_rss_mb(proc.pid) if alive else float("nan")
    finally:
        stop(proc)
    ok = [r["latency_s"] for r in results if r["outcome"] == "ok"]
    count = {k: sum(r["outcome"] == k for r in results) for k in ("ok", "rejected", "failed", "wrong result")}
    return {
        "clients": clients, "seconds": seconds, "image": f"astronaut {size}x{size}, Gaussian sigma 25",
        "requests": len(results), **count,
        "p50_s": float(np.percentile(ok, 50)) if ok else None,
        "p95_s": float(np.percentile(ok, 95)) if ok else None,
        "app_peak_rss_mb": rss, "app_alive_after": alive, "app_correct_after": after,
        "errors": sorted({r["error"] for r in results if r["outcome"] != "ok" and "error" in r})[:5],
    }


def markdown(r: dict, machine: str) -> str:
    p50 = f"{r['p50_s']:.2f}" if r["p50_s"] is not None else "–"
    p95 = f"{r['p95_s']:.2f}" if r["p95_s"] is not None else "–"
    return "\n".join([
        f"{r['clients']} concurrent `gradio_client` clients for {r['seconds']:.0f} s, `/restore` of {r['image']}, "
        f"app on 127.0.0.1 ({machine}); `python scripts/load_test.py --clients {r['clients']} "
        f"--seconds {r['seconds']:.0f}`.",
        "",
        "| requests | restored | rejected (queue full) | failed | p50 s | p95 s | app peak RSS MB | serving after |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        f"| {r['requests']} | {r['ok']} | {r['rejected']} | {r['failed'] + r['wrong result']} | {p50} | {p95} | "
        f"{r['app_peak_rss_mb']:.0f} | {'yes' if r['app_alive_after'] and r['app_correct_after'] else 'NO'} |",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--out", default="docs/bench/load", help="writes OUT.json and OUT.md")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from cleanvision.hardware import cpu_name

    report = run(args.clients, args.seconds, args.size)
    report["machine"] = f"{cpu_name()}, {os.cpu_count()} cores"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    md = markdown(report, report["machine"])
    out.with_suffix(".md").write_text(md + "\n")
    print(md)
    good = report["failed"] == 0 and report["wrong result"] == 0 and report["app_alive_after"] and report["app_correct_after"]
    return 0 if good else 1


if __name__ == "__main__":
    raise SystemExit(main())
