"""scripts/fit_level_curve.py: the reading-to-level curve fitted on held-out training photos."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from browser_util import save_noise_map_model
from conftest import load_script

from cleanvision import DnCNN

ROOT = Path(__file__).resolve().parents[1]
fl = load_script(ROOT / "scripts" / "fit_level_curve.py")


def test_the_fit_finds_the_level_each_reading_restores_best_with():
    """Crops whose best level is a known function of their reading (none up to 2, twice the
    reading from 4 to 6, as a denoiser's faint-noise optimum is, the reading itself from 15): the
    fitted knots follow it."""
    knots = np.array([0.0, 2.0, 4.0, 6.0, 15.0])
    levels = np.arange(16.0)
    rng = np.random.default_rng(0)
    readings = rng.uniform(0, 14, size=(3, 40))
    best = np.interp(readings, knots, [0.0, 0.0, 8.0, 12.0, 15.0])
    psnr = 40.0 - 0.05 * (levels[None, None, :] - best[..., None]) ** 2
    y = fl.fit(knots, readings, psnr, levels)
    assert y[-1] == 15.0 and (np.diff(y) >= 0).all()
    assert y[:2].tolist() == [0.0, 0.0] and y[2] == pytest.approx(8.0, abs=1.0) and y[3] == pytest.approx(12.0, abs=1.0)
    start = np.nanmean(fl.score(knots, knots, readings, psnr, levels))
    assert np.nanmean(fl.score(y, knots, readings, psnr, levels)) > start + 0.5


def test_writes_a_model_that_restores_with_its_curve(tmp_path, photo_folder, capsys):
    train = photo_folder
    model = save_noise_map_model(tmp_path / "map")
    common = ["--train_data_dir", str(train), "--validation_fraction", "1", "--limit", "2",
              "--knots", "0,5,15", "--levels", "0,5,10,15"]
    assert fl.main([str(model), "--output_dir", str(tmp_path / "out")] + common) == 0
    curved = DnCNN.from_pretrained(tmp_path / "out")
    (x0, y0), (x1, y1), (x2, y2) = curved.level_curve
    assert (x0, x1, x2) == (0, 5, 15) and y2 == 15 and 0 <= y0 <= y1 <= 15
    report = (tmp_path / "out" / "level_curve.md").read_text()
    mean = next(line for line in report.splitlines() if line.startswith("| mean of the swept crops"))
    cells = [c.strip() for c in mean.strip("|").split("|")]
    reading, curve, each = float(cells[2]), float(cells[3]), float(cells[5])
    assert 10 < reading <= curve <= each  # the fit starts from the reading and only keeps gains
    assert fl.main([str(model), "--output_dir", str(tmp_path / "again"), "--sweep",
                    str(tmp_path / "out" / "level_sweep.npz")] + common) == 0
    assert DnCNN.from_pretrained(tmp_path / "again").level_curve == curved.level_curve
    with pytest.raises(SystemExit):
        fl.main([str(model), "--output_dir", str(tmp_path / "out")] + common)
    assert "already holds a model" in capsys.readouterr().err
    DnCNN(depth=3, width=8).save_pretrained(tmp_path / "blind")
    with pytest.raises(SystemExit):
        fl.main([str(tmp_path / "blind"), "--output_dir", str(tmp_path / "b")] + common)
    assert "blind model" in capsys.readouterr().err
