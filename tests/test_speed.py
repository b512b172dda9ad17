"""The speed benchmark runs end to end, and the fast engines keep the reference quality."""
from __future__ import annotations

import json

import pytest

from cleanvision.cli import main
from cleanvision.hardware import ISA_FLAGS, cpu_name, cpu_native_bf16, isa_summary
from cleanvision.export import ort_available
from cleanvision.speed import default_engines, engine_quality

from conftest import CBSD68, require


def test_bench_writes_json_and_table(tmp_path, capsys):
    out = tmp_path / "speed"
    assert main(["bench", "--sizes", "96x64", "--engines", "reference,fp32", "--repeats", "1",
                 "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["peak_gflops"]["fp32"] > 1 and report["peak_gflops"]["bf16"] > 0
    assert report["machine"]["isa"] == isa_summary() and list(report["machine"]["isa"]) == list(ISA_FLAGS)
    engines = [r["engine"] for r in report["results"]]
    assert engines == ["reference", "fp32", "opencv-nlm"]
    for r in report["results"]:
        assert r["median_s"] > 0 and r["peak_rss_mb"] > 0 and r["width"] == 96
        if r["engine"] != "opencv-nlm":  # GFLOP/s read against this machine's measured peak
            assert 0 < r["percent_of_peak"] == pytest.approx(100 * r["gflops"] / report["peak_gflops"]["fp32"])
    assert report["results"][0]["speedup_vs_reference"] == 1.0
    md = out.with_suffix(".md").read_text()
    assert "| 96×64 | fp32 |" in md and cpu_name() in md


def test_bench_tile_sweep(tmp_path):
    out = tmp_path / "speed"
    assert main(["bench", "--sizes", "96x64", "--engines", "fp32", "--repeats", "1", "--no-nlm",
                 "--tile-sweep", "48,128", "--sweep-threads", "1,2", "--sweep-engine", "fp32",
                 "--out", str(out)]) == 0
    sweep = json.loads(out.with_suffix(".json").read_text())["tile_sweep"]
    assert [(r["tile_size"], r["threads"]) for r in sweep] == [(48, 1), (48, 2), (128, 1), (128, 2)]
    assert all(r["median_s"] > 0 and r["peak_rss_mb"] > 0 for r in sweep)
    assert "| 128 | 2 |" in out.with_suffix(".md").read_text()


def test_fast_engines_lose_at_most_0_05_db():
    """Issue 5's rule for the shipped model, on the benchmark's `mixed` condition of CBSD68 (first 3)."""
    engines = ["fp32", "bf16", "onnxruntime"]
    q = engine_quality(None, require(CBSD68), ["reference", *engines], limit=3)
    for engine in engines:
        assert q["engines"][engine]["delta_vs_reference"] >= -0.05, q


def test_bench_default_engines_follow_the_hardware():
    """bf16 is timed only where it is native (emulated it takes minutes); ONNX Runtime wherever installed."""
    engines = default_engines()
    assert engines[:2] == ["reference", "fp32"]
    assert ("bf16" in engines) == cpu_native_bf16()
    assert ("onnxruntime" in engines) == ort_available()


def test_int8_matmul_is_exact_and_its_peak_is_measured():
    """The int8 ceiling of int8_ptq.py's table: ONNX Runtime's integer GEMM, checked against numpy."""
    pytest.importorskip("onnxruntime", reason="the [onnx] extra is part of the test requirements")
    import numpy as np

    from cleanvision.speed import int8_matmul, int8_matmul_peak_gops

    rng = np.random.default_rng(0)
    b = rng.integers(-63, 64, (96, 40), dtype=np.int8)
    a = rng.integers(0, 256, (17, 96), dtype=np.uint8)
    assert np.array_equal(int8_matmul(b)(a), a.astype(np.int32) @ b.astype(np.int32))
    assert int8_matmul_peak_gops(max_n=256, repeats=1) > 0.5


def test_bench_names_a_model_that_does_not_load_instead_of_waiting(tmp_path, capsys):
    assert main(["bench", "--model", str(tmp_path / "no-such-model"), "--sizes", "64x64", "--engines", "reference",
                 "--no-nlm", "--repeats", "1", "--out", str(tmp_path / "speed")]) != 0
    assert "no such model folder" in capsys.readouterr().err
    assert not (tmp_path / "speed.json").exists()


def test_a_timing_process_that_dies_raises_instead_of_hanging():
    from cleanvision.speed import _in_child, _time_engine
    with pytest.raises(RuntimeError, match="exited .* without a result"):
        _in_child(_time_engine, "/no/such/model", "reference", 64, 64, 1, None)


def test_bench_takes_shipped_as_eval_does(tmp_path):
    assert main(["bench", "--model", "shipped", "--sizes", "64x64", "--engines", "reference", "--no-nlm",
                 "--repeats", "1", "--out", str(tmp_path / "speed")]) == 0
    report = json.loads((tmp_path / "speed.json").read_text())
    from cleanvision.speed import weights_sha256
    assert report["weights_sha256"] == weights_sha256(None) is not None


def test_bench_times_a_baseline_model_in_the_same_run(tmp_path):
    """A new model against the one it replaces: both timed per engine and size, alternately in
    one process, and the median ratio of the paired calls."""
    from cleanvision import DnCNN
    DnCNN(channels=3, depth=4, width=16).save_pretrained(tmp_path / "small")
    out = tmp_path / "speed"
    assert main(["bench", "--model", "shipped", "--baseline", str(tmp_path / "small"), "--sizes", "128x96",
                 "--engines", "reference", "--no-nlm", "--repeats", "1", "--pair-seconds", "0", "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    r, = report["results"]
    assert r["pairs"] == 1  # --repeats pairs, no more, when no time is asked for
    assert report["baseline"] == str(tmp_path / "small") and report["baseline_weights_sha256"]
    assert r["baseline_median_s"] > 0 and r["paired_median_s"] > 0
    assert r["time_vs_baseline"] == pytest.approx(r["paired_median_s"] / r["baseline_median_s"])  # one pair
    assert r["time_vs_baseline"] > 1  # 12 layers of 96 channels take longer than 4 of 16
    assert "time / baseline" in out.with_suffix(".md").read_text()


def test_paired_timing_keeps_pairing_for_the_time_asked(tmp_path):
    """A fast call is paired until the time asked for is spent (a steadier median ratio), not
    only --repeats times, and never beyond PAIR_MAX pairs."""
    from cleanvision import DnCNN
    from cleanvision.speed import PAIR_MAX, _time_pair

    for name in ("a", "b"):
        DnCNN(channels=3, depth=3, width=8).save_pretrained(tmp_path / name)
    got: list[dict] = []

    class Queue:
        put = got.append

    _time_pair(str(tmp_path / "a"), str(tmp_path / "b"), "reference", 48, 32, 2, None, 0.5, Queue())
    r, = got
    assert 2 < r["pairs"] <= PAIR_MAX
    assert r["paired_median_s"] > 0 and r["baseline_median_s"] > 0 and r["time_vs_baseline"] > 0
