"""Image I/O: bit depths, alpha, EXIF, lossless atomic writes, and one clear error per bad file."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from PIL import Image

from cleanvision import ImageReadError, ImageWriteError, OutputExistsError
from cleanvision.errors import NotKept
from cleanvision.image_io import (Metadata, decode_image, encode_image, photo_metadata, read_image, read_photo,
                                  write_image)

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
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                img = read_image(case.path)
            assert img.shape == case.shape and img.dtype == case.dtype, case.name
            frames_warned = [w for w in caught if issubclass(w.category, NotKept)]
            assert len(frames_warned) == (case.name == "animated.gif"), (case.name, caught)


def test_exif_orientation_applied(corpus, astronaut):
    img = read_image(next(c.path for c in corpus if c.name == "rotated exif.jpg"))
    stored = astronaut[::4, ::4][:64]
    expected = np.rot90(stored, -1)  # orientation 6: rotate clockwise
    assert np.abs(img.astype(int) - expected).mean() < 8  # JPEG loss only


def test_only_the_first_frame_is_read_and_the_reader_says_so(tmp_path, astronaut):
    """A multi-page TIFF scan or an animated GIF: the first page, with a warning that counts them."""
    rgb = astronaut[::4, ::4]
    pages = [Image.fromarray(rgb), Image.fromarray(255 - rgb), Image.fromarray(np.ascontiguousarray(rgb[::-1]))]
    tif, gif = tmp_path / "scan.tif", tmp_path / "anim.gif"
    pages[0].save(tif, save_all=True, append_images=pages[1:])
    pages[0].save(gif, save_all=True, append_images=pages[1:2])
    for path, n, tolerance in ((tif, 3, 0), (gif, 2, 8)):  # GIF: a 256-colour palette
        with pytest.warns(NotKept, match=rf"{path.name}: {n} frames"):
            img = read_image(path)
        assert photo_metadata(path.read_bytes()).frames == n
        assert img.shape == rgb.shape and np.abs(img.astype(int) - rgb).mean() <= tolerance
    still = tmp_path / "still.png"
    write_image(still, rgb)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_image(still)
    assert photo_metadata(still.read_bytes()).frames == 1 and photo_metadata(b"not an image").frames == 1


def test_previews_thumbnails_and_gain_maps_are_not_frames(tmp_path, astronaut):
    """What files carry beside the photo is not a second frame: a camera JPEG's MPF preview (or
    a phone's HDR gain map) and a TIFF's thumbnail page read silently; a stereo pair (MPO of
    two multi-frame images) is two frames."""
    import struct

    import tifffile

    rgb = astronaut[::2, ::2]
    camera = tmp_path / "DSC_0001.JPG"
    Image.fromarray(rgb).save(camera, format="MPO", save_all=True, append_images=[Image.fromarray(rgb[::4, ::4])])
    with Image.open(camera) as im:
        entries = [(e["Size"], e["DataOffset"]) for e in im.mpinfo[0xB002]]
    assert len(entries) == 2  # Pillow marks the second image "Undefined", as a gain map is
    data = camera.read_bytes()
    stereo = tmp_path / "stereo.mpo"  # the same file with both images marked as a stereo pair
    for kind, (size, offset) in zip((0x030000, 0x000000), entries):
        packed = struct.pack("<LLLHH", kind, size, offset, 0, 0)
        assert data.count(packed) == 1
        data = data.replace(packed, struct.pack("<LLLHH", 0x020002, size, offset, 0, 0))
    stereo.write_bytes(data)
    scan = tmp_path / "scan.tif"
    with tifffile.TiffWriter(scan) as tif:
        tif.write(rgb, photometric="rgb")
        tif.write(rgb[::8, ::8], photometric="rgb", subfiletype=1)  # a reduced-resolution thumbnail
    for path, frames in ((camera, 1), (scan, 1), (stereo, 2)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            img = read_image(path)
        assert [str(w.message) for w in caught] == ([f"{path}: 2 frames (or pages); only the first is read"]
                                                    if frames == 2 else []), path.name
        assert img.shape == rgb.shape and photo_metadata(path).frames == frames, path.name


@pytest.mark.parametrize("suffix", [".tif", ".jpg"])
def test_cmyk_files_read_as_rgb(tmp_path, astronaut, suffix):
    """A CMYK file from a print workflow reads as the RGB Pillow converts it to, not as four
    channels with black taken for alpha; a CIELAB TIFF as three colour channels."""
    path = tmp_path / f"print{suffix}"
    Image.fromarray(astronaut[:80, :120]).convert("CMYK").save(path, quality=95)
    with Image.open(path) as im:
        expected = np.asarray(im.convert("RGB")).astype(int)
    img = read_image(path)
    assert img.shape == (80, 120, 3) and np.abs(img - expected).mean() < 1.5
    lab = tmp_path / "lab.tif"  # CIELAB's "A" is a colour, not alpha
    Image.fromarray(astronaut[:80, :120]).convert("LAB").save(lab)
    assert read_image(lab).shape == (80, 120, 3) and np.abs(read_image(lab) - astronaut[:80, :120].astype(int)).mean() < 12


def _phone_jpeg(path, rgb: np.ndarray) -> bytes:
    """A JPEG as a phone writes one: a colour profile, and EXIF with camera, date and "turn 90°"."""
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0110], exif[0x0132], exif[0x0112] = "Phone 9", "2026:12:01 10:00:00", 6
    Image.fromarray(rgb).save(path, quality=95, icc_profile=profile, exif=exif)
    return profile


def test_a_png_keeps_the_colour_profile_and_exif_and_the_writer_says_where_it_cannot(tmp_path, astronaut):
    """A phone photo's profile (Display P3 and the like) and EXIF travel into the PNG, pixels
    unchanged, the EXIF turned upright as the pixels were read."""
    jpg = tmp_path / "phone.jpg"
    profile = _phone_jpeg(jpg, astronaut[:64])
    img, meta = read_photo(jpg)
    assert meta == photo_metadata(jpg) == photo_metadata(jpg.read_bytes()) and meta.icc_profile == profile
    np.testing.assert_array_equal(img, read_image(jpg))
    assert img.shape == (512, 64, 3)  # read upright
    for out in (img, img.astype(np.uint16) * 257, np.dstack([img, img[..., :1]])):
        path = write_image(tmp_path / f"out{out.dtype}{out.shape[2]}.png", out, metadata=meta)
        with Image.open(path) as im:
            assert im.info.get("icc_profile") == profile, (out.dtype, out.shape)
            exif = im.getexif()
            assert (exif[0x0110], exif[0x0132], exif[0x0112]) == ("Phone 9", "2026:12:01 10:00:00", 1)
        np.testing.assert_array_equal(read_image(path), out)  # not turned a second time
        assert photo_metadata(path) == meta
    assert photo_metadata(write_image(tmp_path / "plain.png", img)) == Metadata()
    with pytest.warns(NotKept, match="phone.jpg: not kept: its RGB colour profile and its EXIF record: a TIFF"):
        encode_image(img, ".tif", meta, "phone.jpg")
    with pytest.warns(NotKept, match="does not fit the GRAY output"):
        grey = encode_image(img[..., 0], ".png", meta, "phone.jpg")
    assert photo_metadata(grey).icc_profile is None and photo_metadata(grey).exif == meta.exif
    assert photo_metadata(b"not an image") == Metadata()


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
    with pytest.raises(ImageWriteError, match="already exists") as e:
        write_image(p, astronaut[::2])
    # a Python caller is told the argument, not the command line's flag; the CLI words its own
    assert "overwrite=True" in str(e.value) and "--overwrite" not in str(e.value)
    assert isinstance(e.value, OutputExistsError) and isinstance(e.value, FileExistsError) and e.value.path == p
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


def test_alpha_split_and_join_are_inverse():
    from cleanvision.image_io import join_alpha, split_alpha

    for shape in [(5, 6), (5, 6, 1), (5, 6, 2), (5, 6, 3), (5, 6, 4)]:
        img = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
        colour, alpha = split_alpha(img)
        if len(shape) == 3 and shape[2] in (2, 4):
            assert colour.shape == (5, 6, shape[2] - 1) and alpha.shape == (5, 6, 1)
            np.testing.assert_array_equal(alpha[..., 0], img[..., -1])
        else:
            assert colour is img and alpha is None
        np.testing.assert_array_equal(join_alpha(colour, alpha), img)
    grey = np.zeros((5, 6), np.uint8)
    assert join_alpha(grey, np.ones((5, 6), np.uint8)).shape == (5, 6, 2)


def test_dtype_white_and_float_output_suffix():
    from cleanvision.image_io import ImageDtypeError, dtype_white, output_suffix

    assert dtype_white(np.uint8) == 255.0 and dtype_white(np.dtype(np.uint16)) == 65535.0
    assert dtype_white(np.float32) == dtype_white(np.float64) == 1.0
    for bad in (np.int32, np.bool_, np.int8):
        with pytest.raises(TypeError, match="dtype"):
            dtype_white(bad)
        with pytest.raises(ValueError):  # also a ValueError, as Denoiser has always raised
            dtype_white(bad)
    assert issubclass(ImageDtypeError, TypeError) and issubclass(ImageDtypeError, ValueError)
    assert output_suffix(np.zeros(1, np.float32), ".png") == ".tif"
    assert output_suffix(np.zeros(1, np.uint16), ".png") == ".png"
    assert output_suffix(np.zeros(1, np.float32), ".tiff") == ".tiff"


@pytest.mark.parametrize("suffix", [".heic", ".avif"])
def test_phone_formats_read_upright_with_their_profile_and_exif(tmp_path, astronaut, suffix):
    """HEIC (what iPhones save) and AVIF, as a phone writes them: a profile, EXIF and "turn 90°".
    Read upright, close to the pixels stored (lossy at quality 95), and the PNG written from
    them keeps the profile and EXIF; grey stays grey."""
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0110], exif[0x0112] = "Phone 9", 6
    rgb = astronaut[:192, :320]
    path = tmp_path / f"IMG_0001{suffix.upper()}"
    # EXIF as bytes: pillow-heif then stores the turn as HEIF's own rotation, as phones do
    Image.fromarray(rgb).save(path, quality=95, icc_profile=profile, exif=exif.tobytes())
    img, meta = read_photo(path)
    assert img.shape == (320, 192, 3) and img.dtype == np.uint8
    assert np.abs(img.astype(int) - np.rot90(rgb, -1)).mean() < 3
    assert meta.icc_profile == profile
    png = write_image(tmp_path / "restored.png", img, metadata=meta)
    with Image.open(png) as im:
        assert im.info.get("icc_profile") == profile
        assert (im.getexif()[0x0110], im.getexif()[0x0112]) == ("Phone 9", 1)
    grey = tmp_path / f"grey{suffix}"
    Image.fromarray(astronaut[:64, :80, 1]).save(grey, quality=95)
    assert read_image(grey).shape == (64, 80)
    if suffix == ".heic":  # a 16-bit grey photo, stored in 10 bits: read as 16-bit, not clipped to 8
        deep = astronaut[:64, :80, 1].astype(np.uint16) * 257
        Image.fromarray(deep).save(tmp_path / "deep.heic", quality=-1)
        back = read_image(tmp_path / "deep.heic")
        assert back.dtype == np.uint16 and np.abs(back.astype(int) - deep).mean() < 257
        (tmp_path / "deep.heic").unlink()
    from cleanvision.image_io import list_images

    assert list_images([tmp_path]) == sorted([path, grey, png])


def test_heic_without_its_plugin_and_raw_files_are_refused_with_what_to_do(tmp_path, astronaut, monkeypatch):
    """A camera RAW file is not restored as the small preview most hold as a TIFF page: refused,
    by its suffix or, for a DNG under any name, by its DNG tag, with the advice to develop it."""
    from PIL import TiffImagePlugin

    from cleanvision import image_io

    rgb = astronaut[::8, ::8]
    preview = tmp_path / "IMG_0002.CR2"
    Image.fromarray(rgb).save(preview, format="TIFF")  # a CR2 opens as a TIFF
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[50706] = b"\x01\x04\x00\x00"
    tags.tagtype[50706] = 1  # BYTE
    dng = tmp_path / "renamed.tif"
    Image.fromarray(rgb).save(dng, tiffinfo=tags)
    for path in (preview, dng):
        with pytest.raises(ImageReadError, match=rf"{path.name}: a camera RAW file; develop it into a TIFF or PNG"):
            read_image(path)
    plain = tmp_path / "plain.tif"
    Image.fromarray(rgb).save(plain)
    np.testing.assert_array_equal(read_image(plain), rgb)
    heic = tmp_path / "IMG_0003.HEIC"
    Image.fromarray(rgb).save(heic)
    monkeypatch.setattr(image_io, "HEIF_READER", False)
    with pytest.raises(ImageReadError, match="IMG_0003.HEIC: a HEIC/HEIF photo; reading it needs the pillow-heif"):
        read_image(heic)


def test_list_images_one_suffix_list(tmp_path):
    from cleanvision.image_io import IMAGE_SUFFIXES, images_in, list_images

    for name in ("b.PNG", "a.jpg", "c.webp", "d.gif", "e.txt", ".hidden.png", "sub/f.tiff"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in images_in(tmp_path, recursive=False)] == ["a.jpg", "b.PNG", "c.webp", "d.gif"]
    assert [p.name for p in list_images([tmp_path])] == ["a.jpg", "b.PNG", "c.webp", "d.gif", "f.tiff"]
    from cleanvision.image_io import scan_folder

    images, others = scan_folder(tmp_path)
    assert [p.name for p in images] == ["a.jpg", "b.PNG", "c.webp", "d.gif", "f.tiff"]
    assert others == [tmp_path / "e.txt"]  # hidden files are neither
    assert list_images(tmp_path / "e.txt") == [tmp_path / "e.txt"]  # a file given by name is taken
    with pytest.raises(FileNotFoundError, match="no such file"):
        list_images([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        list_images([tmp_path / "empty"])
    from cleanvision.data import list_images as data_list_images

    assert data_list_images is list_images and ".gif" in IMAGE_SUFFIXES


def test_centre_crop_and_swap_rb():
    from cleanvision.data import center_crop
    from cleanvision.image_io import centre_crop, swap_rb

    img = np.arange(7 * 10 * 3).reshape(7, 10, 3)
    crop = centre_crop(img, 4)
    np.testing.assert_array_equal(crop, img[1:5, 3:7])
    assert crop.flags.c_contiguous and center_crop is centre_crop
    assert centre_crop(img, 9).shape == (7, 9, 3) and centre_crop(img, 0).shape == img.shape
    np.testing.assert_array_equal(swap_rb(img)[..., 0], img[..., 2])
    grey = img[..., 0]
    assert swap_rb(grey) is grey
