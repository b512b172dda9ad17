"""Property-based tests of decode → restore → encode: random bytes never crash it, random valid
images always round-trip with their shape, dtype and alpha. Bounded in time for CI."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import random_dncnn

from cleanvision import Denoiser, ImageReadError
from cleanvision.image_io import decode_image, encode_image

torch.manual_seed(0)
DEN = Denoiser(random_dncnn(depth=3, width=4, pixel_unshuffle=2), tile_size=64)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=4096))
def test_random_bytes_give_an_image_or_one_clear_error(data):
    try:
        img = decode_image(data, "fuzz.bin")
    except ImageReadError as e:
        assert str(e).startswith("fuzz.bin: ") and "\n" not in str(e)
        return
    assert img.ndim in (2, 3) and img.size > 0


@FAST
@given(st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"II*\x00", b"RIFF"]),
       st.binary(max_size=2048))
def test_corrupt_files_with_real_magic_numbers(magic, tail):
    try:
        img = decode_image(magic + tail, "x.img")
    except ImageReadError as e:  # anything else escaping would fail the test
        assert str(e).startswith("x.img: ")
    else:
        assert img.size > 0


@FAST
@given(h=st.integers(1, 90), w=st.integers(1, 90), channels=st.sampled_from([0, 1, 3, 4]),
       dtype=st.sampled_from([np.uint8, np.uint16]), seed=st.integers(0, 2**32 - 1))
def test_valid_images_roundtrip_through_restore(h, w, channels, dtype, seed):
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 0 else (h, w, channels)
    img = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype, endpoint=True)
    decoded = decode_image(encode_image(img, ".png"), "gen.png")
    expected_shape = (h, w) if channels in (0, 1) else shape
    assert decoded.shape == expected_shape and decoded.dtype == dtype
    out = DEN(decoded)
    assert out.shape == decoded.shape and out.dtype == dtype
    if channels == 4:
        assert np.array_equal(out[..., 3], img[..., 3])
    again = decode_image(encode_image(out, ".png"), "out.png")
    assert np.array_equal(again, out)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_tiny_images(n):
    img = np.full((n, n + 1, 3), 100, np.uint8)
    assert DEN(img).shape == img.shape
