"""Image I/O: bit depths, alpha, EXIF, lossless atomic writes, and one clear error per bad file."""
from __future__ import annotations

import re

import numpy as np
import pytest

from cleanvision import ImageReadError, ImageWriteError
from cleanvision.image_io import decode_image, read_image, write_image

from corpus import build


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build(tmp_path_factory.mktemp("corpus"))


def test_corpus_behaves_as_documented(corpus):
    for case in corpus:
        if case.error:
            with pytest.raises(ImageReadError) as e:
                read_image(case.path)
            msg = str(e.value)
            assert "\n" not in msg and case.path.name in msg, msg
            assert re.search(case.error, msg, re.I), f"{case.name}: {msg}"
        else:
            img = read_image(case.path)
            assert img.shape == case.shape and img.dtype == case.dtype, case.name


def test_exif_orientation_applied(corpus, astronaut):
    img = read_image(next(c.path for c in corpus if c.name == "rotated exif.jpg"))
    stored = astronaut[::4, ::4][:64]
    expected = np.rot90(stored, -1)  # orientation 6: rotate clockwise
    assert np.abs(img.astype(int) - expected).mean() < 8  # JPEG loss only


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("kind", ["grey8", "grey16", "rgb8", "rgb16", "rgba8", "rgba16"])
def test_lossless_roundtrip(tmp_path, astronaut, suffix, kind):
    img = astronaut[:50, :70]
    if kind.startswith("grey"):
        img = img[..., 0]
    if kind.startswith("rgba"):
        img = np.dstack([img, np.arange(50 * 70).reshape(50, 70) % 256]).astype(np.uint8)
    if kind.endswith("16"):
        img = img.astype(np.uint16) * 257 + 3
    p = write_image(tmp_path / f"x{suffix}", img)
    back = read_image(p)
    assert back.dtype == img.dtype and np.array_equal(back, img)


def test_write_never_clobbers_and_leaves_no_partial_files(tmp_path, astronaut):
    p = write_image(tmp_path / "a.png", astronaut)
    with pytest.raises(ImageWriteError, match="already exists"):
        write_image(p, astronaut[::2])
    assert np.array_equal(read_image(p), astronaut)
    write_image(p, astronaut[::2], overwrite=True)
    assert read_image(p).shape[0] == 256
    with pytest.raises(ImageWriteError, match="losslessly"):
        write_image(tmp_path / "a.jpg", astronaut)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["a.png"]


def test_pixel_limit_and_folders(tmp_path, astronaut):
    p = write_image(tmp_path / "a.png", astronaut)
    with pytest.raises(ImageReadError, match="over the limit"):
        read_image(p, max_pixels=512 * 511)
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path)
    with pytest.raises(ImageReadError, match="cannot open"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="empty"):
        decode_image(b"", "upload")


def test_grey_alpha_is_written_as_rgba(tmp_path):
    la = np.dstack([np.arange(30 * 40).reshape(30, 40) % 256, np.full((30, 40), 7)]).astype(np.uint8)
    back = read_image(write_image(tmp_path / "la.png", la))
    assert back.shape == (30, 40, 4)
    assert all(np.array_equal(back[..., i], la[..., 0]) for i in range(3)) and np.array_equal(back[..., 3], la[..., 1])
