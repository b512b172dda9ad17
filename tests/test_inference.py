"""Denoiser: shapes, dtypes, alpha, tiling equals one pass, grey/colour mismatch, shipped quality."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import random_dncnn

from cleanvision import Denoiser, WeightsError
from cleanvision.metrics import psnr_uint8
from cleanvision.noise import add_gaussian_noise


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return lambda scale=2, channels=3: Denoiser(random_dncnn(channels=channels, depth=5, width=16, pixel_unshuffle=scale),
                                                tile_size=256)


def test_shipped_model_restores_astronaut(shipped, astronaut):
    """Acceptance (issue 2): Gaussian σ=25 on astronaut, restored PSNR ≥ noisy + 5 dB."""
    noisy = add_gaussian_noise(astronaut, 25, rng=0)
    out = shipped(noisy)
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    assert psnr_uint8(astronaut, out) >= psnr_uint8(astronaut, noisy) + 5


def test_unclipped_float_noise(shipped, astronaut):
    """Float input outside [0, 1] (the paper protocol's unclipped noise) is clipped first, so
    the model sees what it was trained on and still restores strong Gaussian noise."""
    clean = astronaut[100:292, 150:342]
    noisy = clean / 255.0 + np.random.default_rng(0).normal(0, 50 / 255.0, clean.shape)
    assert noisy.min() < 0 and noisy.max() > 1
    out = shipped(noisy.astype(np.float32))
    assert np.array_equal(out, shipped(np.clip(noisy, 0, 1).astype(np.float32)))
    to8 = lambda y: np.clip(np.rint(y * 255), 0, 255).astype(np.uint8)  # noqa: E731
    assert psnr_uint8(clean, to8(out)) >= psnr_uint8(clean, to8(noisy)) + 8


@pytest.mark.parametrize("scale", [1, 2])
def test_tiled_equals_one_pass(scale, astronaut):
    """1000×700 with tiles of 256 equals the one-pass result (float, within 1e-4)."""
    torch.manual_seed(0)
    model = random_dncnn(depth=6, width=16, pixel_unshuffle=scale)
    img = np.tile(astronaut, (2, 2, 1))[:700, :1000].astype(np.float32) / 255
    img = add_gaussian_noise(img, 20, 0)
    tiled = Denoiser(model, tile_size=256, engine="fp32")
    whole = Denoiser(model, tile_size=4096, engine="fp32")
    calls = []
    a = tiled(img, progress=lambda i, n: calls.append((i, n)))
    b = whole(img)
    assert len(calls) == 12 and calls[-1] == (12, 12)  # 3 rows × 4 columns of tiles
    assert np.abs(a - b).max() < 1e-4


def test_fast_engine_matches_reference(astronaut):
    torch.manual_seed(0)
    net = random_dncnn(depth=6, width=16, pixel_unshuffle=2)
    net.train()
    net(torch.rand(4, 3, 32, 32))  # non-trivial BatchNorm statistics
    state = net.state_dict()
    ref_net, fast_net = random_dncnn(depth=6, width=16, pixel_unshuffle=2), random_dncnn(depth=6, width=16, pixel_unshuffle=2)
    ref_net.load_state_dict(state)
    fast_net.load_state_dict(state)
    img = astronaut.astype(np.float32) / 255
    a = Denoiser(ref_net, engine="reference")(img)
    b = Denoiser(fast_net, engine="fp32")(img)
    assert np.abs(a - b).max() < 1e-4


def test_auto_picks_native_bf16_then_onnxruntime_then_fp32(monkeypatch, astronaut):
    """The rule on the three kinds of CPU, and every pick restores the same as ``reference``."""
    import cleanvision.inference as inference

    net = random_dncnn(depth=4, width=8, pixel_unshuffle=2)
    img = astronaut[:96, :80]
    ref = Denoiser(net, engine="reference")(img).astype(int)
    for native, ort, expected in ((True, True, "bf16"), (False, True, "onnxruntime"), (False, False, "fp32")):
        monkeypatch.setattr(inference, "cpu_native_bf16", lambda native=native: native)
        monkeypatch.setattr(inference, "ort_available", lambda ort=ort: ort)
        den = Denoiser(net, device="cpu")
        assert den.engine == expected
        assert np.abs(den(img).astype(int) - ref).max() <= (3 if expected == "bf16" else 1)


def test_dtypes_shapes_and_alpha(small, astronaut):
    den = small()
    rgba = np.dstack([astronaut[:99, :77], np.arange(99 * 77).reshape(99, 77) % 251]).astype(np.uint8)
    out = den(rgba)
    assert out.shape == rgba.shape and np.array_equal(out[..., 3], rgba[..., 3])  # alpha exactly kept
    grey16 = astronaut[:64, :80, 1].astype(np.uint16) * 257
    out16 = den(grey16)
    assert out16.shape == grey16.shape and out16.dtype == np.uint16
    assert len(np.unique(out16 % 257)) > 1  # real 16-bit values, not an 8-bit image scaled up
    for img in (astronaut[:40, :40, :1], astronaut[:40, :40].astype(np.float64) / 255,
                np.dstack([astronaut[:40, :40, 0]] * 2)):
        o = den(img)
        assert o.shape == img.shape and o.dtype == img.dtype


def test_grey_input_colour_model_and_back(small, camera, astronaut):
    colour_model, grey_model = small(channels=3), small(channels=1)
    g = colour_model(camera[:64, :64])
    assert g.shape == (64, 64)
    c = grey_model(astronaut[:64, :64])
    assert c.shape == (64, 64, 3)
    # each channel of a colour image through a grey model = that channel alone
    assert np.array_equal(c[..., 1], grey_model(astronaut[:64, :64, 1]))


def test_bad_arrays_and_models(small, tmp_path):
    den = small()
    with pytest.raises(ValueError, match="NaN"):
        den(np.full((8, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="shape"):
        den(np.zeros((8, 8, 5), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        den(np.zeros((8, 8), np.int32))
    with pytest.raises(WeightsError, match="no such model folder"):
        Denoiser.from_pretrained(tmp_path / "nope")
    with pytest.raises(WeightsError, match="config.json"):
        Denoiser.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="engine"):
        Denoiser(random_dncnn(depth=3, width=4), engine="turbo")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("channels", [0, 3, 4])
def test_strength_zero_is_the_identity(shipped, astronaut, dtype, channels):
    """strength=0 returns the input bit for bit, whatever the dtype and channels (float values
    outside [0, 1] included: nothing is clipped when nothing is removed)."""
    img = add_gaussian_noise(astronaut[:96, :128], 25, rng=1)
    if channels == 0:
        img = img[..., 1]
    elif channels == 4:
        img = np.concatenate([img, np.full(img.shape[:2] + (1,), 200, np.uint8)], axis=2)
    if dtype == np.uint16:
        img = img.astype(np.uint16) * 257
    elif dtype in (np.float32, np.float64):
        img = (img / 255.0 * 1.2 - 0.1).astype(dtype)
    out = shipped(img, strength=0)
    assert out.dtype == img.dtype and np.array_equal(out, img) and out is not img


def test_strength_blends_input_and_restoration(shipped, astronaut):
    noisy = add_gaussian_noise(astronaut[:128, :128], 25, rng=2)
    full = shipped(noisy).astype(float)
    half = shipped(noisy, strength=0.5).astype(float)
    inside = (full > 0) & (full < 255)  # where the full restoration was not clipped to the range
    assert np.abs(half - (noisy + 0.5 * (full - noisy)))[inside].max() <= 1.0  # halfway, up to rounding
    assert psnr_uint8(astronaut[:128, :128], shipped(noisy, strength=0.5)) > psnr_uint8(astronaut[:128, :128], noisy)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="strength"):
            shipped(noisy, strength=bad)


def test_grey_photo_is_restored(shipped, camera):
    """The promise a user tests first: a grey photo as a 2-D array, Gaussian σ 25, comes back
    grey and much cleaner (the model before real-photo training gained 0.5 dB here)."""
    noisy = add_gaussian_noise(camera, 25, rng=0)
    out = shipped(noisy)
    assert out.shape == camera.shape and out.dtype == np.uint8
    assert psnr_uint8(camera, out) >= psnr_uint8(camera, noisy) + 6


def test_luminance_noise_and_jpeg_are_removed(shipped, astronaut):
    """Noise the same in every channel (a camera's luminance noise) and heavy JPEG blocking."""
    from cleanvision.noise import apply_noise

    img = astronaut[:256, :256]
    luma = np.random.default_rng(0).normal(0, 25, img.shape[:2])[..., None]
    noisy = np.clip(np.rint(img + luma), 0, 255).astype(np.uint8)
    assert psnr_uint8(img, shipped(noisy)) >= psnr_uint8(img, noisy) + 5
    blocky, _ = apply_noise(img, {"jpeg_quality": 10}, rng=0)
    assert psnr_uint8(img, shipped(blocky)) >= psnr_uint8(img, blocky) + 0.1


def test_model_location_shipped_is_the_package_weights_whatever_the_environment(monkeypatch, tmp_path):
    from cleanvision.inference import MODEL_ENV, SHIPPED_MODEL, model_location
    monkeypatch.setenv(MODEL_ENV, str(tmp_path))
    assert model_location("shipped") == SHIPPED_MODEL
    assert model_location(None) == str(tmp_path)  # the default follows $CLEANVISION_MODEL
    monkeypatch.delenv(MODEL_ENV)
    assert model_location(None) == SHIPPED_MODEL and model_location("user/repo") == "user/repo"


@pytest.mark.parametrize("engine", ["reference", "fp32", "bf16", "onnxruntime"])
def test_every_engine_restores_odd_and_one_pixel_photos(engine, astronaut):
    """Sizes off the pixel-unshuffle grid, down to 1×1 and 1×2, through every engine: the same
    shape and dtype back, the same pixels as the reference engine, and a 101×101 crop of a real
    photo with real noise much cleaner."""
    den = Denoiser.from_pretrained(engine=engine, device="cpu")
    ref = Denoiser.from_pretrained(engine="reference", device="cpu")
    clean = astronaut[150:251, 180:281]
    noisy = add_gaussian_noise(clean, 25, rng=3)
    out = den(noisy)
    assert out.shape == (101, 101, 3) and out.dtype == np.uint8
    assert psnr_uint8(clean, out) >= psnr_uint8(clean, noisy) + 4

    def same_pixels(got, want) -> bool:
        diff = np.abs(got.astype(int) - want)
        if engine == "bf16":  # it rounds its activations: a few pixels in ten thousand move more
            return np.quantile(diff, 0.999) <= 2 and diff.max() <= 6
        return diff.max() <= 1

    assert same_pixels(out, ref(noisy))
    for img in (noisy[:1, :1], noisy[:1, :2], noisy[:37, :50], noisy[:1, :1, 0]):
        got = den(img)
        assert got.shape == img.shape and got.dtype == img.dtype
        assert same_pixels(got, ref(img))


def test_default_tile_follows_the_engine_and_the_cpu():
    """Each engine gets the tile side its speed table chose (options.TILE_RULE): ONNX Runtime
    large tiles, the torch engines small ones on AMX CPUs; an explicit tile_size wins."""
    from cleanvision.hardware import cpu_flags
    from cleanvision.inference import default_tile_size
    from cleanvision.options import TILE_SIZE_AMX, TILE_SIZE_CPU, TILE_SIZE_ONNXRUNTIME

    cpu = torch.device("cpu")
    assert default_tile_size(cpu, "bf16", frozenset({"amx_bf16", "avx512f"})) == TILE_SIZE_AMX
    assert default_tile_size(cpu, "bf16", frozenset({"avx512_bf16", "avx512f"})) == TILE_SIZE_CPU
    assert default_tile_size(cpu, "int8", frozenset({"amx_bf16"})) == TILE_SIZE_ONNXRUNTIME
    model = random_dncnn(depth=3, width=8)
    assert Denoiser(model, engine="fp32").tile_size == default_tile_size(cpu, "fp32", cpu_flags())
    assert Denoiser(model, engine="onnxruntime").tile_size == TILE_SIZE_ONNXRUNTIME
    assert Denoiser(model, engine="onnxruntime", tile_size=256).tile_size == 256


def test_bf16_engine_fuses_each_convolution_with_its_relu_and_restores_the_same(monkeypatch, astronaut):
    """The bf16 CPU engine runs each convolution and its ReLU as one oneDNN call: on a real noisy
    photo the estimated level and the restoration equal those of the unfused bf16 network
    exactly, and the caller's model is left as it was (it can still be exported or trained)."""
    from cleanvision import onednn
    from cleanvision.inference import load_model

    assert onednn.available()  # torch 2.13's CPU wheel on a CPU with AVX-512 or AMX
    model = load_model("shipped")
    fused = Denoiser(model, engine="bf16", device="cpu")
    assert sum(isinstance(m, onednn.ConvReLU) for m in fused.model.modules()) == 11 + 5
    assert not any(isinstance(m, onednn.ConvReLU) for m in model.modules())
    monkeypatch.setattr(onednn, "available", lambda: False)
    plain = Denoiser(load_model("shipped"), engine="bf16", device="cpu")
    assert not any(isinstance(m, onednn.ConvReLU) for m in plain.model.modules())
    noisy = add_gaussian_noise(astronaut[:300, 100:420], 15, rng=0)
    assert fused.estimate_noise_level(noisy) == plain.estimate_noise_level(noisy) > 5
    assert np.array_equal(fused(noisy), plain(noisy))
    assert np.array_equal(fused(noisy, noise_level=4), plain(noisy, noise_level=4))


def test_photos_up_to_the_one_pass_size_run_in_one_pass_unless_a_tile_is_given(astronaut):
    """With the default tile a 640×480 photo runs in one pass (faster than tiles on a CPU with
    AMX), a larger one in tiles, and a tile size given is kept, with the same restoration."""
    from cleanvision.options import ONE_PASS_PIXELS

    torch.manual_seed(0)
    model = random_dncnn(depth=4, width=8, pixel_unshuffle=2)
    img = add_gaussian_noise(np.tile(astronaut, (2, 2, 1))[:700, :1100], 15, rng=0)

    def tiles(den, photo):
        calls = []
        out = den(photo, progress=lambda i, n: calls.append(n))
        return calls[-1], out

    default, given = Denoiser(model, engine="fp32"), Denoiser(model, engine="fp32", tile_size=128)
    assert 480 * 640 == ONE_PASS_PIXELS and default.one_pass(480, 640) and not given.one_pass(480, 640)
    (n1, a), (n2, b) = tiles(default, img[:480, :640]), tiles(given, img[:480, :640])
    assert n1 == 1 and n2 == 20 and np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert tiles(default, img)[0] > 1
