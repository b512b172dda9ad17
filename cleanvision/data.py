"""Training data: clean images from local folders or a Hub dataset, served as random patches.

Only clean patches come out of here; the noise is added on the training device by
:func:`cleanvision.noise.degrade_batch`, so no two noisy patches are the same and the
data loader never becomes the bottleneck. ``datasets`` is imported only by the Hub route,
so training on a folder needs nothing beyond torch, numpy and OpenCV.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .image_io import IMAGE_SUFFIXES, centre_crop, list_images  # noqa: F401 - re-exported

# Which files are images, and the centre crop, are image_io's (one home for image conventions);
# re-exported here for ``from cleanvision.data import list_images, center_crop``.
center_crop = centre_crop


def holdout_split(paths: Sequence[Path], fraction: float) -> tuple[list[Path], list[Path]]:
    """Split by a hash of the file name: stable when files are added, no seed to remember."""
    def key(p: Path) -> float:
        return int(hashlib.sha1(p.name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    val = [p for p in paths if key(p) < fraction]
    return [p for p in paths if key(p) >= fraction], val


def read_rgb(path: str | Path, channels: int = 3) -> np.ndarray:
    """Read a training image as uint8 RGB (or grey), with EXIF orientation applied."""
    flag = cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE
    img = cv2.imread(str(path), flag)
    if img is None:
        raise OSError(f"{path}: cannot read image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if channels == 3 else img[..., None]


class FolderImages:
    """Images from files, decoded once and kept in memory (CBSD432 + Sun_Hays80 ≈ 400 MB)."""

    def __init__(self, files: Sequence[Path], channels: int = 3, cache: bool = True):
        self.files, self.channels, self.cache = list(files), channels, cache
        self._mem: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> np.ndarray:
        if i in self._mem:
            return self._mem[i]
        img = read_rgb(self.files[i], self.channels)
        if self.cache:
            self._mem[i] = img
        return img


class HubImages:
    """Images of a Hugging Face dataset (e.g. DIV2K as an imagefolder repo), decoded on access."""

    def __init__(self, name: str, split: str = "train", image_column: str = "image",
                 config: str | None = None, data_files: str | list | dict | None = None,
                 channels: int = 3, cache_dir: str | None = None):
        import datasets  # only this route needs it

        self.ds = datasets.load_dataset(name, config, split=split, data_files=data_files,
                                        cache_dir=cache_dir)
        if image_column not in self.ds.column_names:
            raise ValueError(f"dataset {name} has no column {image_column!r}; "
                             f"columns: {', '.join(self.ds.column_names)}")
        self.column, self.channels = image_column, channels

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> np.ndarray:
        pil = self.ds[int(i)][self.column]
        img = np.asarray(pil.convert("RGB" if self.channels == 3 else "L"))
        return img if self.channels == 3 else img[..., None]


class RandomPatches(Dataset):
    """``patches_per_image`` random crops of each image, randomly flipped and rotated.

    Items are uint8 tensors C×H×W. Randomness comes from torch's RNG, which Accelerate
    seeds per process and data-loader worker, so crops differ across processes.
    """

    def __init__(self, images: Sequence[np.ndarray] | Callable, patch_size: int = 64,
                 patches_per_image: int = 16):
        self.images, self.patch, self.per_image = images, patch_size, patches_per_image

    def __len__(self) -> int:
        return len(self.images) * self.per_image

    def __getitem__(self, i: int) -> torch.Tensor:
        img = self.images[i // self.per_image]
        h, w = img.shape[:2]
        p = self.patch
        if h < p or w < p:  # small images: reflect-pad up to one patch
            img = np.pad(img, ((0, max(0, p - h)), (0, max(0, p - w)), (0, 0)), mode="reflect")
            h, w = img.shape[:2]
        y = int(torch.randint(0, h - p + 1, ()))
        x = int(torch.randint(0, w - p + 1, ()))
        t = torch.from_numpy(np.ascontiguousarray(img[y:y + p, x:x + p])).permute(2, 0, 1)
        k = int(torch.randint(0, 8, ()))
        t = torch.rot90(t, k % 4, dims=(1, 2))
        return t.flip(2) if k >= 4 else t.contiguous()

