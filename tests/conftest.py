"""Shared fixtures: real photos from scikit-image and from ../shared/data, the shipped model."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from skimage import data

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CBSD68 = SHARED / "data" / "CBSD68"
BENCH_SCRIPT = SHARED / "bench" / "make_bench.py"


def require(path: Path) -> Path:
    """Shared data is part of the test environment (CI has it); missing means a broken setup."""
    assert path.exists(), f"{path} is missing: the tests need ../shared beside the checkout"
    return path


def load_script(path: Path):
    """Import a file that is a script, not a package module (scripts/*.py, ../shared/bench)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    return data.coffee()


@pytest.fixture(scope="session")
def camera() -> np.ndarray:
    return data.camera()


@pytest.fixture
def photo_folder(tmp_path, astronaut, coffee) -> Path:
    """A training folder of six 300-px colour photos (astronaut and coffee crops), for the
    scripts that read the photos training holds out (all of them, at --validation_fraction 1)."""
    import cv2

    folder = tmp_path / "train"
    folder.mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / f"p{i}.png"), (astronaut if i % 2 else coffee)[:300, :300, ::-1])
    return folder


@pytest.fixture(scope="session")
def cbsd68_files() -> list[Path]:
    return sorted(require(CBSD68).glob("*.png"))


@pytest.fixture(scope="session")
def make_bench():
    """The frozen benchmark generator, imported from ../shared/bench."""
    return load_script(require(BENCH_SCRIPT))


@pytest.fixture(scope="session")
def shipped():
    from cleanvision import Denoiser

    return Denoiser.from_pretrained()


def random_dncnn(**kwargs):
    """A DnCNN with a random last layer: fresh models start as the identity (zero-initialised
    output conv), which would make tests of tiling, folding or influence trivially pass."""
    import torch

    from cleanvision import DnCNN

    model = DnCNN(**kwargs)
    torch.nn.init.normal_(model.body[-1].weight, std=0.05)
    torch.nn.init.normal_(model.body[-1].bias, std=0.01)
    return model
