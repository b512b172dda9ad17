"""train_accelerate.py for real: a 2-process run, resuming, and a saved model that loads and denoises."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cleanvision import Denoiser, DnCNN
from cleanvision.image_io import write_image
from cleanvision.real_noise import TRAIN_MIX

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "train_accelerate.py"
TINY = ["--depth", "4", "--width", "8", "--pixel_unshuffle", "2", "--patch_size", "32",
        "--train_batch_size", "4", "--patches_per_image", "2", "--max_validation_images", "2",
        "--validation_crop", "64", "--report_to", "none", "--checkpointing_steps", "2",
        "--validation_steps", "2", "--lr_warmup_steps", "1"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Twelve real photo crops from scikit-image (no network, no shared data needed)."""
    from skimage import data

    d = tmp_path_factory.mktemp("photos")
    for i, img in enumerate([data.astronaut(), data.coffee(), data.chelsea()]):
        for j in range(4):
            write_image(d / f"{i}_{j}.png", np.ascontiguousarray(img[j * 30:j * 30 + 200, j * 40:j * 40 + 250]))
    return d


def run(args, env_extra=None, launcher=None, check=True):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env_extra or {})}
    cmd = (launcher or [sys.executable]) + [str(SCRIPT), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_two_processes_with_torchrun(tmp_path, folder):
    out = tmp_path / "run"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533"]
    run(["--train_data_dir", str(folder), "--output_dir", str(out), "--max_train_steps", "4", *TINY,
         "--clean_fraction", "0.25"], env_extra={"ACCELERATE_USE_CPU": "yes"}, launcher=torchrun)
    info = json.loads((out / "training_info.json").read_text())
    assert info["processes"] == 2 and info["steps"] == 4
    assert info["degradations"]["clean_fraction"] == 0.25
    assert info["patches_seen"] == 4 * 4 * 2
    assert "val/psnr" in info and info["validation_images"] >= 1
    model = DnCNN.from_pretrained(out)  # strict load of what the main process saved
    assert model.depth == 4 and model.scale == 2
    den = Denoiser.from_pretrained(out)
    img = np.asarray(__import__("skimage").data.astronaut()[:64, :64])
    assert den(img).shape == img.shape


def test_resume_continues_at_the_saved_step(tmp_path, folder):
    out = tmp_path / "run"
    base = ["--train_data_dir", str(folder), "--output_dir", str(out), *TINY]
    run(base + ["--max_train_steps", "4"])
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]  # limit 2
    r = run(base + ["--max_train_steps", "6", "--resume_from_checkpoint", "latest"])
    assert "resumed from" in r.stderr and "at step 4" in r.stderr
    info = json.loads((out / "training_info.json").read_text())
    assert info["steps"] == 6 and info["steps_this_run"] == 2
    assert info["finished"] is True and info["stopped_by"] == "step limit"
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]
    # checkpoints and the final weights get the mode a plain open() gives (the umask's), not mkstemp's 0600
    from cleanvision.image_io import file_mode
    for f in [*(out / "checkpoint-6").iterdir(), out / "model.safetensors", out / "training_info.json"]:
        assert f.stat().st_mode & 0o777 == file_mode(), f
    assert info["degradations"]["real_fraction"] == TRAIN_MIX.real and "real_ranges" in info["degradations"]
    assert info["degradations"]["clean_fraction"] == TRAIN_MIX.clean


def test_help_and_bad_arguments():
    r = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--train_data_dir" in r.stdout and "--dataset_name" in r.stdout
    r = subprocess.run([sys.executable, str(SCRIPT), "--output_dir", "x"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "--train_data_dir" in r.stderr
    r = subprocess.run([sys.executable, str(SCRIPT), "--output_dir", "x", "--train_data_dir", "x",
                        "--real_ranges", "p_jpeg=0.5", "blurr=1,2"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--real_ranges" in r.stderr and "blurr" in r.stderr
    r = subprocess.run([sys.executable, str(SCRIPT), "--output_dir", "x", "--train_data_dir", "x",
                        "--clean_fraction", "5"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--clean_fraction is a share of the patches, from 0 to 1" in r.stderr


def test_time_budget_stops_saves_and_resumes(tmp_path, folder):
    """--max_train_minutes: stops, checkpoints and saves well before the step limit; a rerun resumes."""
    out = tmp_path / "run"
    base = ["--train_data_dir", str(folder), "--output_dir", str(out), *TINY, "--max_train_steps", "100000",
            "--max_train_minutes", "0.02", "--resume_from_checkpoint", "latest"]
    run(base)
    first = json.loads((out / "training_info.json").read_text())
    assert 0 < first["steps"] < 100000
    assert first["finished"] is True and first["stopped_by"] == "time budget: --max_train_minutes 0.02"
    assert (out / f"checkpoint-{first['steps']}").is_dir() and (out / "model.safetensors").is_file()
    run(base)
    second = json.loads((out / "training_info.json").read_text())
    assert second["steps"] > first["steps"] and second["steps_this_run"] == second["steps"] - first["steps"]
    assert second["wall_seconds"] > first["wall_seconds"]  # total time, not this invocation's only


def test_hub_dataset_route_offline(tmp_path, folder):
    """--dataset_name goes through `datasets` (here its local imagefolder builder, no network)."""
    out = tmp_path / "run"
    run(["--dataset_name", "imagefolder", "--data_files", str(folder / "*.png"), "--validation_data_dir", str(folder),
         "--output_dir", str(out), "--max_train_steps", "2", *TINY],
        env_extra={"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    info = json.loads((out / "training_info.json").read_text())
    assert info["train_data"] == "imagefolder" and info["train_images"] == 12 and info["steps"] == 2


def _train_module():
    import importlib

    sys.path.insert(0, str(ROOT))
    try:
        return importlib.import_module("train_accelerate")
    finally:
        sys.path.remove(str(ROOT))


def test_validation_with_uneven_crops_on_two_processes(tmp_path, folder, caplog):
    """Issue 11's reproduction: 3 validation crops on 2 processes used to die in gather
    (gloo size mismatch). Now it finishes, and its PSNR is the single-process one."""
    from accelerate import Accelerator

    out = tmp_path / "run"
    args = ["--train_data_dir", str(folder), "--validation_data_dir", str(folder), "--max_validation_images", "3",
            "--validation_crop", "64", "--max_train_steps", "4", "--validation_steps", "2", "--depth", "3",
            "--width", "8", "--train_batch_size", "2", "--patch_size", "32", "--report_to", "none",
            "--output_dir", str(out)]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29537"]
    r = run(args, env_extra={"ACCELERATE_USE_CPU": "yes"}, launcher=torchrun)
    assert "validation set is tiny: 3 crop(s)" in r.stderr
    info = json.loads((out / "training_info.json").read_text())
    assert info["processes"] == 2 and info["validation_images"] == 3 and info["steps"] == 4

    train = _train_module()
    accelerator = Accelerator(cpu=True)
    _, val = train.build_data(train.parse_args(args))
    expected = train.validate(DnCNN.from_pretrained(out), val, accelerator)  # one process, every crop once
    assert abs(info["val/psnr"] - expected["val/psnr"]) < 1e-3 and abs(info["val/ssim"] - expected["val/ssim"]) < 1e-4
    with caplog.at_level("WARNING"):
        _, none = train.build_data(train.parse_args(["--train_data_dir", str(folder), "--validation_fraction", "0",
                                                     "--output_dir", str(out)]))
    assert none == [] and train.validate(DnCNN(depth=3, width=4), none, accelerator) == {}
    assert any("validation set is EMPTY" in rec.getMessage() and "--validation_fraction 0 of 12 images"
               in rec.getMessage() for rec in caplog.records), [rec.getMessage() for rec in caplog.records]


def test_run_readme_says_what_happened(tmp_path):
    """Issue 11: saved is not pushed; no empty sections; a valid model card for `cleanvision push`."""
    from cleanvision.hub import prepare_upload

    train = _train_module()
    model = DnCNN(depth=3, width=4, pixel_unshuffle=2)
    model.save_pretrained(tmp_path)
    info = {"command": "train_accelerate.py --output_dir x", "train_data": ["photos"], "train_images": 12,
            "steps": 4, "steps_this_run": 4, "patches_seen": 32, "stopped_by": "step limit", "processes": 1,
            "hardware": "a CPU (2 cores)", "mixed_precision": "no", "wall_seconds": 75.0, "validation_images": 0}

    def sections(text):
        body = text.split("---", 2)[2]
        parts = [p for p in body.split("\n## ")[1:]]
        return {p.split("\n", 1)[0]: p.split("\n", 1)[1].strip() for p in parts}

    text = train.write_run_readme(tmp_path, info, model).read_text()
    assert "pushed" not in text.lower() and "no validation" in text and "## Validation" not in text
    assert all(sections(text).values()), sections(text)
    assert "`" + str(tmp_path) + "`" in text and "pixel-unshuffle 2" in text and ", 1 min" in text
    info.update({"val/psnr": 28.5, "val/ssim": 0.81234, "validation_images": 3})
    text = train.write_run_readme(tmp_path, info, model, "me/dncnn").read_text()
    assert "pushed" not in text.lower() and "28.50 dB" in text and '"me/dncnn"' in text
    assert all(sections(text).values())
    assert "README.md" in prepare_upload(tmp_path, tmp_path / "README.md")  # a card the Hub accepts
    text = train.write_run_readme(tmp_path, info, model, "me/dncnn", "https://hf.co/me/dncnn/commit/1").read_text()
    assert "Pushed to the Hugging Face Hub as [me/dncnn]" in text and "commit/1" in text


def test_help_shows_every_option_with_its_default():
    train = _train_module()
    parser = train.build_parser()
    missing = [a.option_strings[0] for a in parser._actions if a.option_strings and not a.help]
    assert missing == []
    text = " ".join(parser.format_help().split())  # help lines wrap anywhere
    for shown in ("--width WIDTH", "(default: 64)", "(default: 0.05)", "(default: cosine)", "ACCELERATE_USE_CPU=yes"):
        assert shown in text, shown
    assert "(default: None)" not in text and "(default: False)" not in text


def test_psnr_loss_is_minus_the_mean_patch_psnr_and_weighs_patches_alike(astronaut):
    """--loss psnr scores what the benchmark averages: each patch's PSNR, not the pooled error.
    A lightly and a heavily damaged patch then pull with the same weight (in dB), where MSE
    lets the heavy one dominate by the ratio of their errors."""
    from cleanvision.metrics import psnr

    train = _train_module()
    clean = torch.from_numpy(astronaut[:128, :128]).permute(2, 0, 1).float().div(255)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(2, 3, 128, 128, generator=g) * torch.tensor([5 / 255, 50 / 255]).view(2, 1, 1, 1)
    noisy = (clean + noise).clamp(0, 1)
    target = noisy - clean  # true residual; a "prediction" of zero leaves the noisy image
    pred = torch.zeros_like(target, requires_grad=True)
    loss = train.residual_loss(pred, target, "psnr")
    expected = -psnr(noisy, clean.expand_as(noisy)).mean()
    assert abs(loss.item() - expected.item()) < 0.1  # the 50 dB floor moves a 34 dB patch by 0.11 dB
    loss.backward()
    # gradient norm per patch ∝ (1/mse)·|residual| ∝ 1/σ: the light patch now pulls harder
    g_psnr = pred.grad.flatten(1).norm(dim=1)
    pred.grad = None
    train.residual_loss(pred, target, "mse").backward()
    g_mse = pred.grad.flatten(1).norm(dim=1)
    assert g_mse[1] > 5 * g_mse[0] and g_psnr[0] > 5 * g_psnr[1]
    # the floor: a perfect prediction scores the floor's PSNR, not infinity
    assert train.residual_loss(target, target, "psnr", psnr_floor_db=40.0).item() == pytest.approx(-40.0, abs=1e-4)
    # a floor below both patches' PSNR (20 dB) weighs them nearly as mse does: the heavy one pulls harder
    pred.grad = None
    train.residual_loss(pred, target, "psnr", psnr_floor_db=20.0).backward()
    g_low = pred.grad.flatten(1).norm(dim=1)
    assert g_low[1] > 2 * g_low[0]


def test_noise_map_run_starts_from_a_blind_model_and_resumes(tmp_path, folder):
    """--noise_map 1 on blind weights: the run starts as that model (zero map weights), trains
    the map and its estimator, resumes from its own checkpoints, and saves a model that takes a map
    (here with JPEG-only damage counted in the map, which the record says)."""
    blind, out = tmp_path / "blind", tmp_path / "map"
    run(["--train_data_dir", str(folder), "--output_dir", str(blind), "--max_train_steps", "2", *TINY])
    base = ["--train_data_dir", str(folder), "--output_dir", str(out), *TINY, "--init_from", str(blind),
            "--noise_map", "1", "--resume_from_checkpoint", "latest", "--map_jpeg_level"]
    run(base + ["--max_train_steps", "2"])
    r = run(base + ["--max_train_steps", "4"])
    assert "at step 2" in r.stderr
    model = DnCNN.from_pretrained(out)
    assert model.noise_map == 1 and model.depth == 4
    assert DnCNN.from_pretrained(out / "checkpoint-4").noise_map == 1  # a checkpoint is a model folder
    assert model.body[0].weight[:, -1].abs().sum() > 0  # the map's input weights moved off zero
    from safetensors.torch import load_file
    at_step_2 = load_file(str(out / "checkpoint-2" / "model.safetensors"))
    assert not torch.equal(at_step_2["estimator.0.weight"], model.estimator[0].weight)  # the estimator trains
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        low, high = model(x, torch.zeros(1, 1, 32, 32)), model(x, torch.full((1, 1, 32, 32), 0.2))
    assert not torch.equal(low, high)
    info = json.loads((out / "training_info.json").read_text())
    assert 0 < info["val/psnr_guided"] < 100 and info["val/psnr_guided"] != info["val/psnr"]  # validated with the true map too
    assert info["degradations"]["map_jpeg_level"] is True  # what the map meant is recorded with the weights


@pytest.mark.parametrize("fit", ["map", "restoration"])
def test_estimator_only_run_leaves_the_denoiser_bit_for_bit(tmp_path, folder, fit):
    """--train_only estimator on a noise-map model, fitting the true map or the frozen denoiser's
    restoration through the level it is given: the estimator moves, every other weight and
    BatchNorm statistic stays exactly as it was; a blind model is refused with the reason, and
    so is a restoration fit of a denoiser that is not frozen. A level curve (fitted to the old
    estimator) is not carried over."""
    from safetensors.torch import load_file

    blind, grown, refit = tmp_path / "blind", tmp_path / "grown", tmp_path / "refit"
    run(["--train_data_dir", str(folder), "--output_dir", str(blind), "--max_train_steps", "2", *TINY])
    run(["--train_data_dir", str(folder), "--output_dir", str(grown), "--max_train_steps", "2", *TINY,
         "--init_from", str(blind), "--noise_map", "1"])
    DnCNN.from_pretrained(grown).with_level_curve([[0, 0], [4, 8], [15, 15]]).save_pretrained(grown)
    run(["--train_data_dir", str(folder), "--output_dir", str(refit), "--max_train_steps", "3", *TINY,
         "--init_from", str(grown), "--train_only", "estimator", "--real_fraction", "0.7", "--estimator_fit", fit])
    assert DnCNN.from_pretrained(refit).level_curve is None  # the curve was fitted to the old estimator
    before, after = (load_file(str(d / "model.safetensors")) for d in (grown, refit))
    assert before.keys() == after.keys()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("estimator.") for k in moved), moved
    r = run(["--train_data_dir", str(folder), "--output_dir", str(tmp_path / "no"), "--max_train_steps", "1", *TINY,
             "--init_from", str(blind), "--train_only", "estimator"], check=False)
    assert r.returncode != 0 and "needs a noise-map model" in r.stderr
    r = run(["--train_data_dir", str(folder), "--output_dir", str(tmp_path / "no2"), "--max_train_steps", "1", *TINY,
             "--init_from", str(grown), "--estimator_fit", "restoration"], check=False)
    assert r.returncode != 0 and "goes with --train_only estimator" in r.stderr


def test_validation_map_is_the_std_of_the_dense_noise(astronaut):
    """What the validation crops' true map says: σ for Gaussian noise, σ·x for speckle (the RMS
    of noisy − clean over the photo), and nothing for impulses."""
    from cleanvision.noise import apply_noise

    train = _train_module()
    photo = (40 + 0.6 * astronaut.astype(np.float64)).round().astype(np.uint8)  # in range: no clipping
    img = photo.astype(np.float64)
    for params in ({"sigma": 20.0}, {"speckle_var": 0.04}, {"sigma": 10.0, "speckle_var": 0.02}):
        noisy, _ = apply_noise(photo, params, 0)
        std = train.dense_noise_std(photo, params)
        assert std.shape == photo.shape
        rms_true = np.sqrt(np.mean((noisy.astype(np.float64) - img) ** 2))  # uint8: clipped, rounded
        assert np.sqrt(np.mean(std.astype(np.float64) ** 2)) == pytest.approx(rms_true, rel=0.03)
    assert not train.dense_noise_std(astronaut, {"salt_pepper": 0.1}).any()
