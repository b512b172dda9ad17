"""The web app, served in-process on loopback and called through its API with gradio_client."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from browser_util import save_blind_model, save_noise_map_model, serve_app
from cleanvision.image_io import encode_image, read_image
from cleanvision.metrics import psnr_uint8
from cleanvision.noise import apply_noise


@pytest.fixture(scope="module")
def served():
    with serve_app() as (app, url):
        yield app, Client(url, verbose=False)


def _png(path, img):
    path.write_bytes(encode_image(img, ".png"))
    return handle_file(str(path))


def _synthetic(client, image, seed, sliders=(30, 0.05, 0.02, 3, 2)):
    return client.predict(image, *sliders, seed, api_name="/degrade_and_restore")


def test_restore_raises_psnr(served, astronaut, tmp_path):
    _, client = served
    noisy, _ = apply_noise(astronaut, {"sigma": 25}, 0)
    (before, after), download, status = client.predict(_png(tmp_path / "astronaut_noisy.png", noisy),
                                                       api_name="/restore")
    restored = read_image(download)
    assert download.endswith("astronaut_noisy_restored.png")
    assert restored.shape == astronaut.shape and restored.dtype == np.uint8
    assert read_image(before).shape == read_image(after).shape == astronaut.shape
    assert "Restored" in status and " s**" in status  # shows how long it took
    gain = psnr_uint8(astronaut, restored) - psnr_uint8(astronaut, noisy)
    assert gain >= 5.0, f"restoring noisy astronaut (sigma 25) gains only {gain:.2f} dB"


def test_same_seed_same_noise(served, coffee, tmp_path):
    _, client = served
    clean = _png(tmp_path / "coffee.png", coffee)
    noisy1, restored1, report = _synthetic(client, clean, seed=7)
    noisy2, _, _ = _synthetic(client, clean, seed=7)
    noisy3, _, _ = _synthetic(client, clean, seed=8)
    a, b, c = read_image(noisy1), read_image(noisy2), read_image(noisy3)
    assert a.shape == coffee.shape and read_image(restored1).shape == coffee.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert "PSNR" in report and "SSIM" in report and "noisy" in report and "restored" in report


def test_bad_upload_is_an_error_and_app_keeps_serving(served, camera, tmp_path):
    _, client = served
    fake = tmp_path / "holiday.png"
    fake.write_text("this is not a picture\n")
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(fake)), api_name="/restore")
    heavy = tmp_path / "heavy.png"
    heavy.write_bytes(b"\x89PNG" + bytes(26 * 2**20))  # over the 25 MB upload limit
    with pytest.raises(ValueError, match="maximum file size"):
        client.predict(handle_file(str(heavy)), api_name="/restore")
    big = _png(tmp_path / "huge.png", np.zeros((6000, 7000), np.uint8))  # 42 MP, a small file
    with pytest.raises(AppError, match="megapixels"):
        client.predict(big, api_name="/restore")
    _, download, _ = client.predict(_png(tmp_path / "camera.png", camera), api_name="/restore")
    assert read_image(download).shape == camera.shape


def test_16bit_alpha_download(served, tmp_path):
    _, client = served
    rng = np.random.default_rng(0)
    img = rng.integers(0, 65536, (48, 40, 4), dtype=np.uint16)
    _, download, status = client.predict(_png(tmp_path / "deep.png", img), api_name="/restore")
    out = read_image(download)
    assert out.dtype == np.uint16 and out.shape == img.shape
    np.testing.assert_array_equal(out[..., 3], img[..., 3])
    assert "16-bit" in status and "alpha kept" in status


def test_every_corpus_file_is_restored_or_refused_with_its_message(served, tmp_path):
    """Issue 6: the same corpus as the library tests, through the app's API, app still serving."""
    from corpus import build

    _, client = served
    for case in build(tmp_path / "corpus"):
        if case.name == "non-utf8 name":
            continue  # an upload's file name is the browser's; covered by the library and CLI tests
        if case.error:
            with pytest.raises(AppError) as e:
                client.predict(handle_file(str(case.path)), api_name="/restore")
            assert case.path.name in str(e.value), (case.name, str(e.value))
        else:
            _, download, _ = client.predict(handle_file(str(case.path)), api_name="/restore")
            out = read_image(download)
            assert out.shape[:2] == case.shape[:2], case.name


# ---------------------------------------------------------------------------- the handlers, called directly


@pytest.fixture(scope="module")
def app_module():
    from browser_util import load_app

    return load_app()


def test_restore_handler_strength(app_module, shipped, astronaut, tmp_path):
    """Issue 12: strength 0 gives the input back, 0.5 lies between the input and the full restoration."""
    noisy, _ = apply_noise(astronaut[:96, :128], {"sigma": 25}, 0)
    path = tmp_path / "noisy.png"
    path.write_bytes(encode_image(noisy, ".png"))
    results = {}
    for s in (0.0, 0.5, 1.0):
        (before, after), download, status = app_module.restore(shipped, str(path), strength=s)
        results[s] = read_image(download).astype(int)
        assert download.endswith("noisy_restored.png") and read_image(after).shape == noisy.shape
        assert ("strength" in status) == (s != 1.0), status
    np.testing.assert_array_equal(results[0.0], noisy)
    lo, hi = np.minimum(noisy, results[1.0]), np.maximum(noisy, results[1.0])
    assert ((results[0.5] >= lo - 1) & (results[0.5] <= hi + 1)).all()
    assert 0 < np.abs(results[0.5] - noisy).mean() < np.abs(results[1.0] - noisy).mean()
    _, default, _ = app_module.restore(shipped, {"path": str(path), "orig_name": "mine.png"})  # strength left out
    np.testing.assert_array_equal(read_image(default), results[1.0])
    assert default.endswith("mine_restored.png")


def test_an_animated_upload_restores_its_first_frame_and_says_so(app_module, shipped, astronaut, tmp_path):
    from PIL import Image

    rgb = astronaut[:96, :128]
    path = tmp_path / "anim.gif"
    Image.fromarray(rgb).save(path, save_all=True, append_images=[Image.fromarray(255 - rgb)])
    (before, _), download, status = app_module.restore(shipped, str(path))
    assert np.abs(read_image(before).astype(int) - rgb).mean() < 8  # the first frame, through a GIF palette
    assert read_image(download).shape == rgb.shape and "Only the first of its 2 frames" in status, status
    _, _, report = app_module.degrade_and_restore(shipped, str(path), 25)
    assert "Only the first of its 2 frames" in report, report


def test_a_multi_page_tiff_upload_is_shown_as_its_first_page_and_the_page_says_so(app_module, astronaut, tmp_path,
                                                                                     monkeypatch):
    from PIL import Image

    told = []
    monkeypatch.setattr(app_module.gr, "Info", told.append)
    rgb = astronaut[:96, :128]
    path = tmp_path / "scan.tif"
    Image.fromarray(rgb).save(path, save_all=True, append_images=[Image.fromarray(255 - rgb)] * 2)
    shown = app_module.show_upload(str(path))
    np.testing.assert_array_equal(read_image(shown), rgb)
    assert Path(shown).name == "scan.png" and told == ["scan.tif: only the first of its 3 frames (or pages) will be restored."]


def test_the_download_and_previews_keep_the_uploads_colour_profile_and_exif(app_module, shipped, astronaut, tmp_path):
    from PIL import Image, ImageCms

    from cleanvision.image_io import photo_metadata

    exif = Image.Exif()
    exif[0x0132] = "2026:12:01 10:00:00"
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "phone.jpg"
    Image.fromarray(astronaut[:96, :128]).save(path, quality=90, icc_profile=profile, exif=exif)
    meta = photo_metadata(path)
    assert meta.icc_profile == profile and meta.exif
    (before, after), download, _ = app_module.restore(shipped, str(path))
    assert [photo_metadata(p) for p in (before, after, download)] == [meta] * 3
    noisy, restored, _ = app_module.degrade_and_restore(shipped, str(path), 25)
    assert photo_metadata(noisy) == photo_metadata(restored) == meta


def test_an_iphone_heic_upload_is_restored_upright_with_its_profile(app_module, shipped, astronaut, tmp_path):
    """What an iPhone uploads from the desktop: a HEIC, turned by HEIF's rotation, with a profile;
    the before/after and the download are upright PNGs that keep it, the download restored."""
    import gradio as gr
    from PIL import Image, ImageCms

    from cleanvision.image_io import photo_metadata
    from cleanvision.metrics import psnr_uint8
    from cleanvision.noise import add_gaussian_noise

    exif = Image.Exif()
    exif[0x0112] = 6
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    clean = astronaut[128:288, 96:352]
    path = tmp_path / "IMG_0001.HEIC"
    Image.fromarray(add_gaussian_noise(clean, 25, rng=2)).save(path, quality=95, icc_profile=profile,
                                                               exif=exif.tobytes())
    (before, after), download, status = app_module.restore(shipped, str(path))
    upright = np.rot90(clean, -1)
    assert read_image(download).shape == upright.shape == read_image(before).shape
    assert psnr_uint8(upright, read_image(download)) >= psnr_uint8(upright, read_image(before)) + 5
    assert all(photo_metadata(p).icc_profile == profile for p in (before, after, download))
    assert Path(download).name.startswith("IMG_0001") and "Restored** 160×256" in status, (download, status)
    # the page shows the HEIC as a PNG of the same pixels and metadata: restoring it gives the same
    shown = app_module.show_upload({"path": str(path), "orig_name": path.name})
    assert Path(shown).name == "IMG_0001.png" and photo_metadata(shown) == photo_metadata(path)
    np.testing.assert_array_equal(read_image(shown), read_image(path))
    (_, _), download_shown, _ = app_module.restore(shipped, {"path": shown, "orig_name": Path(shown).name})
    np.testing.assert_array_equal(read_image(download_shown), read_image(download))
    assert Path(download_shown).name == Path(download).name
    png = tmp_path / "photo.png"  # a format browsers show: left as uploaded
    png.write_bytes(encode_image(clean, ".png"))
    assert app_module.show_upload(str(png)) == gr.skip()
    bad = tmp_path / "notes.heic"
    bad.write_text("shopping list")
    with pytest.raises(gr.Error):  # and a file that is no image is refused on upload
        app_module.show_upload(str(bad))


def test_speckle_restores_with_a_level_by_brightness_and_says_so(app_module, shipped, coffee, tmp_path):
    """Speckle grows with brightness: in auto mode the app restores with the library's map (the
    same output as ``Denoiser`` in auto mode) and its status gives the map's range."""
    from cleanvision.noise import add_speckle_noise

    noisy = np.clip(np.rint(add_speckle_noise(coffee, 0.04, 0)), 0, 255).astype(np.uint8)
    path = tmp_path / "speckled.png"
    path.write_bytes(encode_image(noisy, ".png"))
    _, download, status = app_module.restore(shipped, str(path))
    np.testing.assert_array_equal(read_image(download), shipped(noisy))
    level_map = shipped.auto_noise_map(noisy)
    found = re.search(r"estimated σ ([0-9.]+) \(by brightness: σ ([0-9]+)-([0-9]+)\)", status)
    assert found, status
    assert abs(float(found.group(1)) - shipped.level_of(level_map)) <= 0.05
    assert (int(found.group(2)), int(found.group(3))) == (round(level_map.min()), round(level_map.max()))


def test_degrade_and_restore_handler(app_module, shipped, coffee, tmp_path):
    path = tmp_path / "coffee.png"
    path.write_bytes(encode_image(coffee[:120, :160], ".png"))
    noisy, restored, report = app_module.degrade_and_restore(shipped, str(path), 30, 0.05, 0.0, 2, 2, 7)
    assert "PSNR" in report and read_image(restored).shape == (120, 160, 3)
    noisy0, restored0, report0 = app_module.degrade_and_restore(shipped, str(path), 30, 0.05, 0.0, 2, 2, 7,
                                                                strength=0)
    np.testing.assert_array_equal(read_image(noisy0), read_image(noisy))  # same seed, same noise
    np.testing.assert_array_equal(read_image(restored0), read_image(noisy0))  # strength 0: nothing removed
    assert "(+0.00 dB)" in report0 and "strength 0" in report0
    # the JPEG slider saves the damaged image as JPEG, last, as apply_noise does
    noisy_j, _, _ = app_module.degrade_and_restore(shipped, str(path), 30, 0.05, 0.0, 2, 2, 7, jpeg_quality=30)
    from cleanvision.noise import apply_noise
    expected, _ = apply_noise(coffee[:120, :160], {"sigma": 30, "salt_pepper": 0.05, "scribbles": 2, "thickness": 2,
                                                   "jpeg_quality": 30}, 7)
    np.testing.assert_array_equal(read_image(noisy_j), expected)
    assert not np.array_equal(read_image(noisy_j), read_image(noisy))


def test_float_input_downloads_a_float_tiff(app_module, shipped, tmp_path):
    """One float output format (image_io.output_suffix): float32 TIFF, as the CLI writes it."""
    from cleanvision.image_io import write_image

    img = (np.random.default_rng(0).random((40, 50, 3)) * 0.5 + 0.25).astype(np.float32)
    path = write_image(tmp_path / "f.tif", img)
    _, download, status = app_module.restore(shipped, str(path))
    out = read_image(download)
    assert download.endswith("f_restored.tif") and out.dtype == np.float32 and out.shape == img.shape
    assert "float32 TIFF" in status and "could not keep" not in status
    from PIL import Image, ImageCms  # a scan with a colour profile: the TIFF download cannot hold it, and says so

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(img[..., 0], mode="F").save(tmp_path / "scan.tif", icc_profile=profile)
    _, download, status = app_module.restore(shipped, str(tmp_path / "scan.tif"))
    assert download.endswith("scan_restored.tif") and read_image(download).dtype == np.float32
    assert "It could not keep its RGB colour profile: a TIFF output holds no metadata here" in status, status


def test_refusals_are_one_log_line(app_module, shipped, tmp_path, caplog):
    import gradio as gr

    fake = tmp_path / "holiday.png"
    fake.write_text("this is not a picture\n")
    with caplog.at_level("WARNING", logger="cleanvision.app"):
        with pytest.raises(gr.Error) as e:
            app_module.restore(shipped, str(fake))
    assert "holiday.png" in e.value.message and e.value.print_exception is False
    lines = [r.getMessage() for r in caplog.records if r.name == "cleanvision.app"]
    assert len(lines) == 1 and lines[0].startswith("refused: holiday.png") and "\n" not in lines[0]
    with pytest.raises(gr.Error, match="Upload a noisy photo first"):
        app_module.restore(shipped, None)


def test_strength_through_the_api_and_refusal_without_traceback(served, astronaut, tmp_path, capfd):
    _, client = served
    noisy, _ = apply_noise(astronaut[:64, :64], {"sigma": 25}, 0)
    _, download, _ = client.predict(_png(tmp_path / "n.png", noisy), 0, api_name="/restore")
    np.testing.assert_array_equal(read_image(download), noisy)
    _, restored, _ = client.predict(_png(tmp_path / "c.png", astronaut[:64, :64]), 25, 0, 0, 0, 3, 1, 0,
                                    api_name="/degrade_and_restore")
    noisy_again, _, _ = client.predict(_png(tmp_path / "c.png", astronaut[:64, :64]), 25, 0, 0, 0, 3, 1,
                                       api_name="/degrade_and_restore")
    np.testing.assert_array_equal(read_image(restored), read_image(noisy_again))
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    strength = {"/restore": api["/restore"]["parameters"][1], "/degrade_and_restore": api["/degrade_and_restore"]["parameters"][7]}
    for name, param in strength.items():  # appended after the older arguments, with defaults
        assert param["label"] == "Strength" and param["parameter_default"] == 1, param
    jpeg = api["/degrade_and_restore"]["parameters"][8]
    assert jpeg["parameter_name"] == "jpeg_quality" and jpeg["parameter_default"] == 0, jpeg
    for name in ("/restore", "/degrade_and_restore"):  # the newest, last: None (auto), a number or "auto"
        level = api[name]["parameters"][-1]
        assert level["parameter_name"] == "noise_level" and level["parameter_has_default"], level
        assert level["parameter_default"] is None and level["python_type"]["type"] == "float | str | None", level
    assert len(api["/restore"]["parameters"]) == 3 and len(api["/degrade_and_restore"]["parameters"]) == 10
    capfd.readouterr()
    fake = tmp_path / "holiday.png"
    fake.write_text("this is not a picture\n")
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(fake)), api_name="/restore")
    err = capfd.readouterr().err
    assert "Traceback" not in err, err


# ---------------------------------------------------------------------------- out-of-range numbers are refused


@pytest.mark.parametrize("strength", [1.5, -0.1])
def test_api_refuses_strength_out_of_range(served, astronaut, tmp_path, strength):
    """Never clamped: strength 1.5 is an error naming the range [0, 1], as the library's own."""
    _, client = served
    image = _png(tmp_path / "n.png", astronaut[:32, :32])
    with pytest.raises(AppError, match=re.escape(f"strength must be in [0, 1], got {strength}.")):
        client.predict(image, strength, api_name="/restore")
    with pytest.raises(AppError, match=re.escape(f"strength must be in [0, 1], got {strength}.")):
        client.predict(image, 25, 0, 0, 0, 3, 1, strength, api_name="/degrade_and_restore")
    with pytest.raises(AppError, match=re.escape("sigma must be in [0, 75], got 80.")):
        client.predict(image, 80, 0, 0, 0, 3, 1, api_name="/degrade_and_restore")
    _, download, _ = client.predict(image, 1, api_name="/restore")  # the ends of the range are fine
    assert read_image(download).shape == (32, 32, 3)


OUT_OF_RANGE = [("sigma", -1, "in [0, 75]"), ("sigma", 75.5, "in [0, 75]"), ("salt_pepper", 0.31, "in [0, 0.3]"),
                ("speckle_var", -0.01, "in [0, 0.1]"), ("scribbles", 11, "a whole number in [0, 10]"),
                ("scribbles", 2.5, "a whole number in [0, 10]"), ("thickness", 0, "a whole number in [1, 8]"),
                ("seed", -1, "a whole number in [0, 9223372036854775807]"), ("strength", 1.01, "in [0, 1]"),
                ("jpeg_quality", 101, "a whole number in [0, 100]"), ("sigma", float("nan"), "in [0, 75]"),
                ("strength", "lots", "a number in [0, 1]")]


@pytest.mark.parametrize("name, value, span", OUT_OF_RANGE, ids=[f"{n}={v}" for n, v, _ in OUT_OF_RANGE])
def test_every_number_out_of_range_is_refused_with_its_range(app_module, shipped, coffee, tmp_path, name, value,
                                                              span):
    import gradio as gr

    path = tmp_path / "coffee.png"
    path.write_bytes(encode_image(coffee[:40, :40], ".png"))
    with pytest.raises(gr.Error) as e:
        app_module.degrade_and_restore(shipped, str(path), **{name: value})
    assert e.value.message.startswith(f"{name} must be {span}, got "), e.value.message
    assert e.value.print_exception is False


def test_missing_numbers_mean_the_defaults(app_module, shipped, coffee, tmp_path):
    path = tmp_path / "coffee.png"
    path.write_bytes(encode_image(coffee[:40, :40], ".png"))
    given = app_module.degrade_and_restore(shipped, str(path), None, None, None, None, None, None, None, None)
    default = app_module.degrade_and_restore(shipped, str(path))
    np.testing.assert_array_equal(read_image(given[1]), read_image(default[1]))
    _, restored, _ = app_module.restore(shipped, str(path), strength=None)
    assert read_image(restored).shape == (40, 40, 3)
    assert {n: f.default for n, f in app_module.FIELDS.items()} == {  # as the page's sliders start
        "strength": 1, "sigma": 25, "salt_pepper": 0, "speckle_var": 0, "scribbles": 0, "thickness": 3,
        "seed": 0, "jpeg_quality": 0, "noise_level": None}  # None: estimated from the photo


# ---------------------------------------------------------------------------- the noise level


@pytest.fixture(scope="module")
def map_folder(tmp_path_factory):
    """A saved noise-map model (random weights: the level and the estimate change the result)."""
    return save_noise_map_model(tmp_path_factory.mktemp("noise-map-model"))


@pytest.fixture(scope="module")
def map_den(map_folder):
    from cleanvision import Denoiser

    return Denoiser.from_pretrained(map_folder)


@pytest.fixture(scope="module")
def served_map(app_module, map_folder):
    """The app as ``app.py --model FOLDER`` serves a noise-map model, and a client."""
    with serve_app(app_module.load_denoiser(str(map_folder))) as (app, url):
        yield app, Client(url, verbose=False)


@pytest.fixture(scope="module")
def noisy_crop(astronaut):
    return apply_noise(astronaut[:96, :128], {"sigma": 25}, 0)[0]


def _estimate_in(text: str) -> float:
    found = re.search(r"noise level: auto, estimated σ ([0-9]+\.[0-9])", text)
    assert found, text
    return float(found.group(1))


def test_noise_level_steers_a_noise_map_model(served_map, noisy_crop, tmp_path):
    """/restore with noise_level 5 and 40 gives two different images, each saying the level used."""
    _, client = served_map
    image = _png(tmp_path / "n.png", noisy_crop)
    out = {}
    for level in (5, 40):
        _, download, status = client.predict(image, 1, level, api_name="/restore")
        out[level] = read_image(download)
        assert out[level].shape == noisy_crop.shape and f"noise level: σ {level}, as set" in status, status
    assert np.abs(out[5].astype(int) - out[40].astype(int)).mean() > 0.5
    _, restored5, report = client.predict(image, 25, 0, 0, 0, 3, 1, 1, 0, 5, api_name="/degrade_and_restore")
    _, restored40, _ = client.predict(image, 25, 0, 0, 0, 3, 1, 1, 0, 40, api_name="/degrade_and_restore")
    assert "noise level: σ 5, as set" in report and not np.array_equal(read_image(restored5), read_image(restored40))


def test_auto_noise_level_shows_the_models_estimate(served_map, map_den, noisy_crop, tmp_path):
    """Auto (None, "auto", "" or left out) restores with the level the model estimates, and the
    status gives it: Denoiser.estimate_noise_level of the same image, to 0.1."""
    _, client = served_map
    image = _png(tmp_path / "n.png", noisy_crop)
    expected = map_den.estimate_noise_level(noisy_crop)
    _, download, status = client.predict(image, api_name="/restore")  # an older caller: no noise_level
    assert abs(_estimate_in(status) - expected) <= 0.1, (status, expected)
    np.testing.assert_array_equal(read_image(download), map_den(noisy_crop))  # auto is the library's auto
    for auto in (None, "auto", " Auto ", ""):
        _, again, status = client.predict(image, 1, auto, api_name="/restore")
        assert abs(_estimate_in(status) - expected) <= 0.1, (auto, status)
        np.testing.assert_array_equal(read_image(again), read_image(download))
    # the synthetic tab reports the estimate for the noisy image it made
    noisy, _, report = client.predict(image, 30, 0, 0, 0, 3, 4, api_name="/degrade_and_restore")
    assert abs(_estimate_in(report) - map_den.estimate_noise_level(read_image(noisy))) <= 0.1, report


@pytest.mark.parametrize("level", [80, -1, 75.5])
def test_noise_level_out_of_range_is_refused_with_its_range(served_map, noisy_crop, tmp_path, level):
    """Never clamped: 80 is an error naming [0, 75], on both endpoints."""
    _, client = served_map
    image = _png(tmp_path / "n.png", noisy_crop[:32, :32])
    message = re.escape(f"noise_level must be in [0, 75], got {level}.")
    with pytest.raises(AppError, match=message):
        client.predict(image, 1, level, api_name="/restore")
    with pytest.raises(AppError, match=message):
        client.predict(image, 25, 0, 0, 0, 3, 1, 1, 0, level, api_name="/degrade_and_restore")
    for end in (0, 75):  # the ends of the range are fine
        _, download, _ = client.predict(image, 1, end, api_name="/restore")
        assert read_image(download).shape == (32, 32, 3)


@pytest.fixture(scope="module")
def blind_den(app_module, tmp_path_factory):
    """A blind model (it finds the noise level itself), as ``app.py --model FOLDER`` loads it."""
    return app_module.load_denoiser(str(save_blind_model(tmp_path_factory.mktemp("blind-model"))))


@pytest.fixture(scope="module")
def served_blind(blind_den):
    with serve_app(blind_den) as (app, url):
        yield app, Client(url, verbose=False)


def test_blind_model_refuses_a_noise_level_and_takes_auto(served_blind, astronaut, tmp_path):
    """A blind model: a number is refused saying so; None and "auto" restore as before."""
    _, client = served_blind
    image = _png(tmp_path / "n.png", apply_noise(astronaut[:64, :64], {"sigma": 25}, 0)[0])
    with pytest.raises(AppError, match=r"This model is blind: it finds the noise level itself; leave noise_level "
                                       r'empty \(or "auto"\), got 10\.'):
        client.predict(image, 1, 10, api_name="/restore")
    with pytest.raises(AppError, match="blind"):
        client.predict(image, 25, 0, 0, 0, 3, 1, 1, 0, 10, api_name="/degrade_and_restore")
    _, before, status = client.predict(image, api_name="/restore")
    assert "noise level" not in status, status
    for auto in (None, "auto"):
        _, download, _ = client.predict(image, 1, auto, api_name="/restore")
        np.testing.assert_array_equal(read_image(download), read_image(before))
    _, restored, report = client.predict(image, 25, 0, 0, 0, 3, 1, 1, 0, "auto", api_name="/degrade_and_restore")
    assert "PSNR" in report and read_image(restored).shape == (64, 64, 3)


def test_noise_level_handler_refusals(app_module, map_den, blind_den, coffee, tmp_path):
    """The handlers, called directly, refuse as the API does, before reading the image."""
    import gradio as gr

    path = tmp_path / "coffee.png"
    path.write_bytes(encode_image(coffee[:40, :40], ".png"))
    cases = [(map_den, 80, "noise_level must be in [0, 75], got 80."),
             (map_den, "lots", 'noise_level must be "auto" (or empty) or a number in [0, 75], got \'lots\'.'),
             (map_den, True, "noise_level must be a number in [0, 75], got True."),
             (map_den, float("nan"), "noise_level must be in [0, 75], got nan."),
             (blind_den, 10, "This model is blind: it finds the noise level itself")]
    for den, level, message in cases:
        for handler in (app_module.restore, app_module.degrade_and_restore):
            with pytest.raises(gr.Error) as e:
                handler(den, str(path), noise_level=level)
            assert e.value.message.startswith(message), (level, e.value.message)
            assert e.value.print_exception is False
        with pytest.raises(gr.Error, match="noise_level"):  # refused before the upload is looked at
            app_module.restore(den, None, noise_level=level)
    _, _, status = app_module.restore(map_den, str(path), noise_level="40")  # a number as text, as MCP may send
    assert "noise level: σ 40, as set" in status
