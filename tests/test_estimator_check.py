"""scripts/estimator_check.py: noise-level estimators compared on held-out training photos."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from browser_util import save_noise_map_model
from conftest import load_script

from cleanvision import DnCNN
from cleanvision.image_io import write_image

ROOT = Path(__file__).resolve().parents[1]
ec = load_script(ROOT / "scripts" / "estimator_check.py")


@pytest.mark.parametrize("name", [c for c, (_, t) in ec.CONDITIONS.items() if t > 0 and "JPEG" not in c])
def test_each_known_level_is_the_std_of_the_damage_it_applies(name, astronaut):
    """The 'true level' column is what the damage really is: the std of damaged − clean, per
    colour, on a photo of mid greys (next to no clipping); luminance noise is the same in every colour."""
    damage, level = ec.CONDITIONS[name]
    photo = (115 + 0.1 * astronaut[:256, :256].astype(np.float64)).round().astype(np.uint8)
    diff = damage(photo, np.random.default_rng(0)).astype(np.float64) - photo
    assert diff.std() == pytest.approx(level, rel=0.03)
    same = np.allclose(diff[..., 0], diff[..., 1]) and np.allclose(diff[..., 1], diff[..., 2])
    assert same == name.startswith("luminance")


def test_own_noise_reads_the_noise_a_photo_carries_and_leaves_noisy_references_out(astronaut, photo_folder):
    photo = astronaut[100:356, 100:356]
    assert ec.own_noise(photo) < 3
    noisy = np.clip(photo + np.random.default_rng(0).normal(0, 10, photo.shape), 0, 255).astype(np.uint8)
    assert ec.own_noise(noisy) == pytest.approx(10, rel=0.15)
    write_image(photo_folder / "noisy.png", noisy)
    ap = argparse.ArgumentParser()
    ec.add_heldout_arguments(ap, limit=True)
    assert ap.parse_args(["--max_own_noise", "-1"]).max_own_noise is None  # a negative limit: every photo
    assert ap.parse_args([]).max_own_noise == 3.0
    every = ec.crops([photo_folder], 1.0, None, max_own_noise=None)
    clean = ec.crops([photo_folder], 1.0, None, max_own_noise=3)
    assert len(every) == 7 and len(clean) == 6  # the six photos of the folder, not the noisy one
    assert not any(np.array_equal(c, noisy) for c in clean) and any(np.array_equal(c, noisy) for c in every)


def test_the_summary_of_a_perfect_estimator_is_zero():
    perfect = {c: t for c, (_, t) in ec.CONDITIONS.items()}
    assert ec.summary(perfect) == (0.0, 0.0)
    off = {c: 1.2 * t + 0.5 * (t == 0) for c, t in perfect.items()}  # 20 % high, 0.5 where there is none
    assert ec.summary(off) == pytest.approx((0.2, 0.5))


def test_reads_the_held_out_photos_and_refuses_a_blind_model(tmp_path, photo_folder, capsys):
    train = photo_folder
    model = save_noise_map_model(tmp_path / "map")
    args = ["--model", str(model), "--train_data_dir", str(train), "--validation_fraction", "1", "--limit", "2"]
    assert ec.main(args + ["--out", str(tmp_path / "t.md")]) == 0
    table = (tmp_path / "t.md").read_text()
    assert "median over 2 held-out photos" in table
    for c in ec.CONDITIONS:
        assert f"| {c} |" in table
    assert ec.main(args + ["--restore", "--levels", "0,25", "--out", str(tmp_path / "r.md")]) == 0
    restored = (tmp_path / "r.md").read_text().split("Mean PSNR (dB) of the restorations")[1]
    for c in ec.CONDITIONS:
        row = next(line for line in restored.splitlines() if line.startswith(f"| {c} |"))
        auto, best = row.split(" | ")[1:3]
        assert 10 < float(auto) < 100 and ("(level 0)" in best or "(level 25)" in best)
    with pytest.raises(SystemExit):
        ec.main(args + ["--levels", "0,25"])
    assert "--levels goes with --restore" in capsys.readouterr().err
    DnCNN(depth=3, width=8).save_pretrained(tmp_path / "blind")
    with pytest.raises(SystemExit):
        ec.main(["--model", str(tmp_path / "blind"), "--train_data_dir", str(train), "--validation_fraction", "1"])
    assert "blind model" in capsys.readouterr().err
