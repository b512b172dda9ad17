"""The int8 engine: a QAT'd model folder's int8 graph restores real photos like the float model,
with the same tiling and image handling; a stale, missing or unrunnable graph is refused when
asked for and passed over by ``auto``; ``auto`` takes int8 only by the written rule."""
from __future__ import annotations

import shutil
import warnings

import cv2
import numpy as np
import pytest

from int8_models import run_qat, train_small_float

pytest.importorskip("onnxruntime", reason="the [onnx] extra is part of the test requirements")


@pytest.fixture(scope="module")
def int8_folder(tmp_path_factory):
    """A small float model trained on the training photos (it genuinely denoises), QAT'd for 60
    steps by scripts/qat.py: a model folder with its int8 graph."""
    root = tmp_path_factory.mktemp("int8")
    float_dir = train_small_float(root / "float", steps=300)
    run_qat(float_dir, root / "qat", "--max_train_steps", "60", "--checkpointing_steps", "60")
    return root / "qat"


@pytest.fixture(scope="module")
def map_int8_folder(tmp_path_factory):
    """The same for a noise-map model (the graph takes the map as a second input)."""
    root = tmp_path_factory.mktemp("int8map")
    float_dir = train_small_float(root / "float", noise_map=1, steps=100)
    run_qat(float_dir, root / "qat", "--max_train_steps", "20", "--checkpointing_steps", "20")
    return root / "qat"


def copy_folder(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("checkpoint-*"))
    return dst


def test_int8_restores_a_real_photo_within_0_3_db_of_the_float_model(int8_folder, astronaut, coffee):
    from cleanvision import Denoiser
    from cleanvision.metrics import psnr_uint8
    from cleanvision.noise import add_gaussian_noise, random_mixture

    int8 = Denoiser.from_pretrained(int8_folder, engine="int8")
    ref = Denoiser.from_pretrained(int8_folder, engine="reference")
    assert int8.engine == "int8" and int8.int8_graph is not None
    for clean in (astronaut[:256, 100:356], coffee[100:300, 200:456]):
        for noisy in (add_gaussian_noise(clean, 25, rng=0), random_mixture(clean, np.random.default_rng(0))[0]):
            p_noisy, p_float, p_int8 = (psnr_uint8(clean, x) for x in (noisy, ref(noisy), int8(noisy)))
            assert p_float > p_noisy + 0.5  # a real denoiser,
            assert abs(p_int8 - p_float) <= 0.3, (p_noisy, p_float, p_int8)  # and int8 keeps its quality


def test_tiled_and_whole_image_int8_outputs_agree_within_one_grey_level(int8_folder, astronaut):
    from cleanvision import Denoiser
    from cleanvision.noise import add_gaussian_noise

    noisy = add_gaussian_noise(astronaut[:300, :260], 25, rng=1)
    whole = Denoiser.from_pretrained(int8_folder, engine="int8", tile_size=1024)(noisy)
    tiled = Denoiser.from_pretrained(int8_folder, engine="int8", tile_size=64)(noisy)
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1


def test_int8_takes_any_size_and_kind_of_photo(int8_folder, coffee, camera):
    from cleanvision import Denoiser

    den = Denoiser.from_pretrained(int8_folder, engine="int8")
    small = den(coffee[:101, :101])
    assert small.shape == (101, 101, 3) and small.dtype == np.uint8
    big = cv2.resize(coffee, (4000, 3000), interpolation=cv2.INTER_CUBIC)
    out = den(big)
    assert out.shape == big.shape and np.abs(out.astype(int) - big.astype(int)).mean() < 3  # a clean photo kept
    grey = den(camera)
    assert grey.shape == camera.shape and grey.dtype == np.uint8
    rgba = np.dstack([coffee[:64, :64], np.full((64, 64), 7, np.uint8)])
    assert np.array_equal(den(rgba)[..., 3], rgba[..., 3])
    f = den(coffee[:64, :64].astype(np.float32) / 255)
    assert f.dtype == np.float32 and f.shape == (64, 64, 3)


def test_a_noise_map_model_runs_in_int8_with_a_given_or_estimated_level(map_int8_folder, astronaut):
    from cleanvision import Denoiser
    from cleanvision.metrics import psnr_uint8
    from cleanvision.noise import add_gaussian_noise

    clean = astronaut[:200, 150:350]
    noisy = add_gaussian_noise(clean, 25, rng=0)
    int8 = Denoiser.from_pretrained(map_int8_folder, engine="int8")
    ref = Denoiser.from_pretrained(map_int8_folder, engine="reference")
    assert int8.takes_noise_level and int8.engine == "int8"
    for level in (None, 25, 10):
        a, b = psnr_uint8(clean, ref(noisy, noise_level=level)), psnr_uint8(clean, int8(noisy, noise_level=level))
        assert abs(a - b) <= 0.5, (level, a, b)
    assert not np.array_equal(int8(noisy, noise_level=5), int8(noisy, noise_level=40))  # the map steers it


#: CPU flags of the two kinds the rule tells apart (what cpu_flags() reads off each machine).
EPYC_AVX512 = frozenset({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"})
XEON_AMX = EPYC_AVX512 | {"amx_bf16", "amx_int8", "avx_vnni"}


@pytest.fixture
def on_epyc(monkeypatch):
    """``auto``'s int8 rule run as on an AMD EPYC with VNNI, where it takes a gated graph, whatever
    CPU the tests run on (on AMX it refuses before looking at the graph, which these tests check)."""
    import cleanvision.int8 as int8

    monkeypatch.setattr(int8, "cpu_flags", lambda: EPYC_AVX512)


def test_a_stale_graph_is_refused_and_auto_falls_back_to_float(int8_folder, tmp_path, astronaut, on_epyc):
    """Retrained float weights beside the old graph: engine="int8" says it is stale, auto warns
    and restores with a float engine, exactly as that engine does."""
    from cleanvision import Denoiser, DnCNN
    from cleanvision.errors import Int8Unavailable
    from cleanvision.int8 import record_gate

    folder = copy_folder(int8_folder, tmp_path / "stale")
    record_gate(folder / "model_int8.onnx", [_passing_row()], "test")  # even a gated graph
    model = DnCNN.from_pretrained(folder)
    with __import__("torch").no_grad():
        model.body[0].bias += 0.01  # "retrained"
    model.save_pretrained(folder)
    with pytest.raises(Int8Unavailable, match="stale"):
        Denoiser.from_pretrained(folder, engine="int8")
    with pytest.warns(UserWarning, match="stale.*scripts/qat.py"):
        den = Denoiser.from_pretrained(folder, engine="auto")
    assert den.engine != "int8" and "stale" in den.int8_note
    img = astronaut[:96, :96]
    assert np.array_equal(den(img), Denoiser.from_pretrained(folder, engine=den.engine)(img))


def test_a_missing_graph_is_refused_when_asked_and_silently_passed_over_by_auto(int8_folder, tmp_path):
    from cleanvision import Denoiser
    from cleanvision.errors import Int8Unavailable

    folder = copy_folder(int8_folder, tmp_path / "nograph")
    (folder / "model_int8.onnx").unlink()
    with pytest.raises(Int8Unavailable, match="no int8 graph .*scripts/qat.py"):
        Denoiser.from_pretrained(folder, engine="int8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        den = Denoiser.from_pretrained(folder, engine="auto")
    assert den.engine != "int8" and "no int8 graph" in den.int8_note


def test_without_onnxruntime_int8_is_refused_and_auto_falls_back(int8_folder, tmp_path, monkeypatch, on_epyc):
    import cleanvision.int8 as int8
    from cleanvision import Denoiser
    from cleanvision.errors import Int8Unavailable

    folder = copy_folder(int8_folder, tmp_path / "gated")
    int8.record_gate(folder / "model_int8.onnx", [_passing_row()], "test")
    monkeypatch.setattr(int8, "ort_available", lambda: False)
    with pytest.raises(Int8Unavailable, match="needs onnxruntime"):
        Denoiser.from_pretrained(folder, engine="int8")
    with pytest.warns(UserWarning, match="needs onnxruntime"):
        assert Denoiser.from_pretrained(folder, engine="auto").engine != "int8"


def _passing_row(delta: float = -0.02, worst: float = -0.2) -> dict:
    return {"data": "/x/CBSD68", "condition": "mixed", "images": 68, "psnr_float": 30.0, "psnr_int8": 30.0 + delta,
            "delta": delta, "worst_image_delta": worst}


def test_auto_takes_int8_only_from_a_graph_that_passed_its_gate_on_a_cpu_where_it_wins(int8_folder, tmp_path, on_epyc):
    from cleanvision import Denoiser
    from cleanvision.int8 import read_metadata, record_gate

    folder = copy_folder(int8_folder, tmp_path / "gate")
    den = Denoiser.from_pretrained(folder, engine="auto")
    assert den.engine != "int8" and "no passed quality gate" in den.int8_note
    failed = record_gate(folder / "model_int8.onnx", [_passing_row(), _passing_row(-0.2, -0.3)], "test")
    assert not failed["passed"] and Denoiser.from_pretrained(folder, engine="auto").engine != "int8"
    assert not record_gate(folder / "model_int8.onnx", [_passing_row(-0.05, -0.6)], "test")["passed"]
    passed = record_gate(folder / "model_int8.onnx", [_passing_row()], "python scripts/int8_gate.py x --record")
    assert passed["passed"] and read_metadata(folder / "model_int8.onnx")["weights_sha256"]  # metadata kept
    den = Denoiser.from_pretrained(folder, engine="auto")
    assert den.engine == "int8" and "quality gate passed" in den.int8_note
    assert Denoiser.from_pretrained(folder, engine="auto", device="cpu").engine == "int8"


def test_auto_leaves_int8_to_bf16_on_a_cpu_with_amx(int8_folder, tmp_path, monkeypatch):
    """On AMX bf16 is the faster engine (docs/speed.md: int8 0.84× bf16 at 512×512), so auto
    refuses even a gated graph there, says why, and does not load it."""
    import cleanvision.int8 as int8
    from cleanvision import Denoiser

    folder = copy_folder(int8_folder, tmp_path / "amx")
    int8.record_gate(folder / "model_int8.onnx", [_passing_row()], "test")
    monkeypatch.setattr(int8, "cpu_flags", lambda: XEON_AMX)
    monkeypatch.setattr(int8, "open_graph", lambda *a, **k: pytest.fail("the graph was opened"))
    den = Denoiser.from_pretrained(folder, engine="auto")
    assert den.engine != "int8" and "AMX" in den.int8_note


def test_the_cpu_rule_follows_the_speed_tables():
    from cleanvision.int8 import cpu_refuses

    epyc_avx2 = frozenset({"avx2", "fma"})
    assert cpu_refuses(127, EPYC_AVX512) is None
    assert "AMX" in cpu_refuses(127, XEON_AMX)
    assert "saturate" in cpu_refuses(127, epyc_avx2) and cpu_refuses(64, epyc_avx2) is None
    assert cpu_refuses(64, frozenset()) is not None


def test_the_shipped_weights_have_no_int8_graph_so_auto_is_unchanged():
    from cleanvision import Denoiser
    from cleanvision.hardware import cpu_native_bf16, ort_available
    from cleanvision.inference import SHIPPED_MODEL
    from cleanvision.int8 import INT8_FILE

    assert not (SHIPPED_MODEL / INT8_FILE).exists()
    den = Denoiser.from_pretrained(device="cpu")
    assert den.engine == ("bf16" if cpu_native_bf16() else "onnxruntime" if ort_available() else "fp32")
    assert "no int8 graph" in den.int8_note


def test_cli_denoise_and_bench_run_int8_and_say_why_not(int8_folder, tmp_path, astronaut, capsys):
    from cleanvision.cli import main
    from cleanvision.image_io import read_image, write_image
    from cleanvision.noise import add_gaussian_noise

    write_image(tmp_path / "in" / "a.png", add_gaussian_noise(astronaut[:120, :150], 25, rng=0))
    assert main(["denoise", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(int8_folder),
                 "--engine", "int8"]) == 0
    assert "int8 engine on cpu" in capsys.readouterr().err
    assert read_image(tmp_path / "out" / "a.png").shape == (120, 150, 3)
    assert main(["denoise", str(tmp_path / "in"), "-o", str(tmp_path / "out2"), "--engine", "int8"]) == 1
    assert "no int8 graph" in capsys.readouterr().err
    assert main(["denoise", str(tmp_path / "in"), "-o", str(tmp_path / "out3"), "--engine", "int8",
                 "--device", "cuda"]) == 1
    assert "runs on the CPU" in capsys.readouterr().err
    assert main(["bench", "--model", str(int8_folder), "--sizes", "96x64", "--engines", "fp32,int8", "--repeats",
                 "1", "--no-nlm", "--out", str(tmp_path / "speed")]) == 0
    import json

    report = json.loads((tmp_path / "speed.json").read_text())
    row = next(r for r in report["results"] if r["engine"] == "int8")
    assert report["peak_gflops"]["int8"] > 0 and 0 < row["percent_of_peak"]
    assert "GOP/s int8" in (tmp_path / "speed.md").read_text()


def test_push_uploads_a_fresh_int8_graph_and_refuses_a_stale_one(int8_folder, tmp_path):
    from cleanvision import DnCNN
    from cleanvision.errors import WeightsError
    from cleanvision.hub import prepare_upload

    folder = copy_folder(int8_folder, tmp_path / "push")
    assert set(prepare_upload(folder)) == {"config.json", "model.safetensors", "training_info.json",
                                           "model_int8.onnx"}
    DnCNN(depth=3, width=4).save_pretrained(tmp_path / "other")
    shutil.copy(tmp_path / "other" / "model.safetensors", folder / "model.safetensors")
    shutil.copy(tmp_path / "other" / "config.json", folder / "config.json")
    with pytest.raises(WeightsError, match="stale"):
        prepare_upload(folder)


def test_the_gate_script_scores_int8_against_float_and_records_its_verdict(int8_folder, tmp_path):
    """scripts/int8_gate.py on a real set (CC15, all 15 pairs): per-image PSNR of both engines,
    the table, and --record puts the verdict in the graph, which auto then reads."""
    import json

    from conftest import ROOT, SHARED, load_script, require
    from cleanvision.int8 import GATE_MEAN_DB, GATE_WORST_DB, read_metadata

    gate = load_script(ROOT / "scripts" / "int8_gate.py")
    folder = copy_folder(int8_folder, tmp_path / "gate")
    cc15 = require(SHARED / "data" / "real" / "CC15")
    with pytest.raises(SystemExit):  # a gate on part of a set is no gate
        gate.main([str(folder), "--sets", str(cc15), "--limit", "2", "--record"])
    assert gate.main([str(folder), "--sets", str(cc15), "--record", "--out", str(tmp_path / "g")]) == 0
    record = json.loads(read_metadata(folder / "model_int8.onnx")["quality_gate"])
    (row,) = record["sets"]
    assert row["condition"] == "real" and row["images"] == 15 and row["psnr_float"] > 20
    assert record["passed"] == (row["delta"] >= -GATE_MEAN_DB and row["worst_image_delta"] >= -GATE_WORST_DB)
    assert "| CC15 | real | 15 |" in (tmp_path / "g.md").read_text()
    assert json.loads((tmp_path / "g.json").read_text())["qat"]["steps"] == 60
