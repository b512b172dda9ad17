"""Reading and writing images without surprises.

* Reads PNG, JPEG, TIFF, BMP, WebP, GIF, AVIF and HEIC/HEIF (phone photos; through the
  ``pillow-heif`` plugin) as **RGB order** numpy
  arrays: ``H×W`` grey, ``H×W×3`` colour, ``H×W×4`` colour + alpha, ``H×W×2`` grey + alpha;
  8-bit (uint8), 16-bit (uint16) or float32 TIFF, exactly as stored, EXIF orientation applied.
  Of a file with several frames or pages (animated GIF or WebP, multi-page TIFF, stereo MPO)
  only the first is read, with a :class:`~cleanvision.errors.NotKept` warning; the previews
  camera JPEGs carry, phones' HDR gain maps and TIFF thumbnails are not frames. Camera RAW files (DNG, CR2,
  NEF, ...) are refused with a message to develop them first: a DNG is a TIFF whose first page
  is often a small preview, which would otherwise be restored in the photo's place.
  :func:`photo_metadata` gives
  what the file records beyond those pixels: the ICC colour profile they are in (a phone's
  Display P3, a camera's Adobe RGB), the EXIF record and the number of frames;
  :func:`read_photo` reads a file's pixels and metadata at once.
* Checks the pixel count from the header **before** decoding (decompression bombs), and
  that the file decodes completely (truncated files are errors, not grey blocks).
* Writes losslessly (PNG, TIFF) with the input's bit depth and, in a PNG, the input's colour
  profile and EXIF record when given (``metadata=``), so that a restored photo looks as its
  input did in a colour-managed viewer and keeps its date and camera; atomically: a temporary file in
  the same folder renamed into place, so a crash never leaves a half-written output, and
  never over an existing file unless asked. Written files get the mode a plain ``open()``
  gives under the umask (``-rw-r--r--`` under umask 022). TIFFs are deflate-compressed
  without a predictor, which plain ``tifffile`` and Pillow read with no extra codec package.

It is also the one home of the image conventions the rest of the package shares:
:data:`IMAGE_SUFFIXES`, :func:`list_images` and :func:`scan_folder` (which files are images,
and which in a folder are not),
:func:`split_alpha` / :func:`join_alpha` (alpha is the last of 2 or 4 channels and is
passed through untouched), :func:`dtype_white` (the value of white per dtype),
:func:`centre_crop`, :func:`swap_rb` (the frozen benchmark draws noise in OpenCV's BGR
order) and :func:`output_suffix` (float images are written as float32 TIFF).

Every problem raises :class:`~cleanvision.errors.ImageReadError` or
:class:`~cleanvision.errors.ImageWriteError` with a one-line message naming the file.
"""
from __future__ import annotations

import os
import struct
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageReadError, ImageWriteError, NotKept, OutputExistsError
from .options import MAX_PIXELS  # noqa: F401 - re-exported: the default of every read

try:  # HEIC/HEIF, what iPhones and many Android phones save: Pillow reads it through this plugin
    from pillow_heif import register_heif_opener
except ImportError:  # a minimal install (a training machine): HEIC files get a clear error instead
    HEIF_READER = False
else:
    register_heif_opener()
    HEIF_READER = True

#: Every file suffix read as an image (lower case); the one list for listing folders.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".avif", ".heic", ".heif")
#: Camera RAW suffixes: photos, but sensor data to be developed (demosaicked, white-balanced)
#: before there is an image to restore; named in the error and in a folder's left-out files.
RAW_SUFFIXES = (".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2",
                ".raf", ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".erf", ".kdc", ".mrw", ".rwl")
#: The one place the RAW advice is worded.
RAW_ADVICE = "a camera RAW file; develop it into a TIFF or PNG first (e.g. with darktable or RawTherapee)"
#: Suffixes written (losslessly).
WRITE_SUFFIXES = (".png", ".tif", ".tiff")
#: What float images are written as: PNG holds only 8/16-bit samples, float32 TIFF keeps them exactly.
FLOAT_SUFFIX = ".tif"
#: TIFF encoding: deflate (zlib) without a predictor, readable by plain tifffile and Pillow
#: (OpenCV's default, LZW with a predictor, needs the imagecodecs package in tifffile).
TIFF_PARAMS = (cv2.IMWRITE_TIFF_COMPRESSION, cv2.IMWRITE_TIFF_COMPRESSION_ADOBE_DEFLATE,
               cv2.IMWRITE_TIFF_PREDICTOR, cv2.IMWRITE_TIFF_PREDICTOR_NONE)


# ---------------------------------------------------------------------------- conventions


class ImageDtypeError(TypeError, ValueError):
    """An array dtype that is not an image sample type (uint8, uint16 or float in [0, 1])."""


def dtype_white(dtype: np.dtype | type) -> float:
    """The value of white for an image dtype: 255 (uint8), 65535 (uint16), 1.0 (any float).

    Raises :class:`ImageDtypeError` (a ``TypeError`` and a ``ValueError``) for other dtypes.
    """
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    if np.issubdtype(dtype, np.floating):
        return 1.0
    raise ImageDtypeError(f"unsupported image dtype {dtype}; use uint8, uint16 or float in [0, 1]")


def split_alpha(img: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``(colour, alpha)``: alpha is the last channel of an ``H×W×2`` or ``H×W×4`` image, kept
    as ``H×W×1``; other images come back as ``(img, None)``. Both are views, not copies."""
    if img.ndim == 3 and img.shape[2] in (2, 4):
        return img[..., :-1], img[..., -1:]
    return img, None


def join_alpha(colour: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """Inverse of :func:`split_alpha`: ``colour`` (``H×W`` or ``H×W×C``) with ``alpha``
    (``H×W×1`` or ``H×W``) appended as the last channel; ``colour`` itself when ``alpha`` is None."""
    if alpha is None:
        return colour
    colour = colour if colour.ndim == 3 else colour[..., None]
    alpha = alpha if alpha.ndim == 3 else alpha[..., None]
    return np.concatenate([colour, alpha], axis=2)


def swap_rb(img: np.ndarray) -> np.ndarray:
    """RGB ↔ BGR of a colour image (a view); grey images unchanged. The frozen benchmark
    (``make_bench.py``) draws its noise on OpenCV's BGR arrays, so noise meant to match it
    bit for bit is drawn on ``swap_rb(rgb)`` and swapped back."""
    return img[..., ::-1] if img.ndim == 3 and img.shape[2] == 3 else img


def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    """The central ``size``×``size`` crop (a side shorter than ``size`` is kept whole;
    ``size <= 0`` keeps the whole image), as a contiguous array."""
    if size <= 0:
        return np.ascontiguousarray(img)
    h, w = img.shape[:2]
    ch, cw = min(size, h), min(size, w)
    y, x = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(img[y:y + ch, x:x + cw])


def output_suffix(img: np.ndarray, suffix: str = ".png") -> str:
    """The suffix ``img`` is written with when ``suffix`` is asked for: float images cannot
    be PNG, so they become :data:`FLOAT_SUFFIX` (float32 TIFF, lossless); all else keeps ``suffix``."""
    if suffix.lower() == ".png" and np.issubdtype(img.dtype, np.floating):
        return FLOAT_SUFFIX
    return suffix


def is_image_file(path: str | os.PathLike) -> bool:
    """A file whose suffix is in :data:`IMAGE_SUFFIXES` and whose name is not hidden (``.``)."""
    p = Path(path)
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()


def scan_folder(folder: str | os.PathLike, recursive: bool = True) -> tuple[list[Path], list[Path]]:
    """``(images, others)`` in ``folder`` (and its sub-folders if ``recursive``), each sorted:
    the image files, and the other files that are not hidden (``.``), so that a command can say
    what it left out (a RAW photo, a HEIC one on a minimal install) rather than skip it silently."""
    folder = Path(folder)
    files = sorted(f for f in (folder.rglob("*") if recursive else folder.iterdir())
                   if not f.name.startswith(".") and f.is_file())
    images = [f for f in files if is_image_file(f)]
    return images, [f for f in files if not is_image_file(f)]


def images_in(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """The image files in ``folder`` (and its sub-folders if ``recursive``), sorted; may be empty."""
    return scan_folder(folder, recursive)[0]


def list_images(paths: str | os.PathLike | Sequence[str | os.PathLike], recursive: bool = True) -> list[Path]:
    """Image files under the given files and folders: files as given, folders through
    :func:`images_in`. Raises ``FileNotFoundError`` for a missing path and when there are no images."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += images_in(p, recursive)
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    if not found:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, paths))}")
    return found


# ---------------------------------------------------------------------------- reading


#: The brands (bytes 8-12 of an ISO media file) of HEIC/HEIF images, and the TIFF tag that
#: marks a DNG (a RAW file in TIFF's layout).
HEIF_BRANDS, DNG_VERSION = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"), 50706
#: Formats Pillow decodes rather than OpenCV: OpenCV has no HEIF reader, and its AVIF reader
#: leaves the EXIF orientation unapplied.
PILLOW_FORMATS = ("AVIF", "HEIF")


def _open(data: bytes) -> Image.Image:
    """Pillow's lazy open of ``data`` without Pillow's own pixel limit: the caller has applied
    (or, for the header, is about to apply) ``max_pixels``."""
    import io

    old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        return Image.open(io.BytesIO(data))
    finally:
        Image.MAX_IMAGE_PIXELS = old


#: A TIFF page's NewSubfileType bits that make it part of another page rather than a page:
#: a reduced-resolution copy (thumbnail, pyramid level) or a transparency mask.
TIFF_NOT_A_PAGE = 0b101


def _has_alpha(im: Image.Image) -> bool:
    """Whether an opened image has alpha: a mode ending in A (RGBA, LA, PA; not LAB, whose A is
    a colour) or a transparent palette entry or colour."""
    return im.mode.endswith(("A", "a")) or "transparency" in im.info


def _frames(im: Image.Image) -> int:
    """The frames or pages a person sees in an opened file: an animated GIF's or WebP's
    frames, a TIFF's pages, but not the images a file carries beside its photo: a TIFF's
    thumbnails, a JPEG's MPF previews (which most cameras write) and HDR gain maps (which
    phones write), where only a stereo pair or panorama's multi-frame images count.
    Moves ``im`` off its first frame (read everything else about the file first)."""
    n = max(1, getattr(im, "n_frames", 1))
    if im.format == "MPO":
        kinds = [e.get("Attribute", {}).get("MPType", "") for e in (getattr(im, "mpinfo", None) or {}).get(0xB002, [])]
        return max(1, sum(k.startswith("Multi-Frame") for k in kinds))
    if im.format == "TIFF" and n > 1:
        pages = 0
        for i in range(n):
            im.seek(i)
            pages += not im.tag_v2.get(254, 0) & TIFF_NOT_A_PAGE
        return max(1, pages)
    return n


def _header(data: bytes, name: str, max_pixels: int) -> tuple[str, tuple[int, int], bool, int]:
    """Format, size, whether there is alpha and the number of frames, from the header only;
    verify PNG chunks and JPEG completeness."""
    import io

    if not data:
        raise ImageReadError(f"{name}: empty file (0 bytes)")
    if Path(name).suffix.lower() in RAW_SUFFIXES:  # most RAW formats are TIFFs that open as their preview
        raise ImageReadError(f"{name}: {RAW_ADVICE}")
    if not HEIF_READER and data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        raise ImageReadError(f"{name}: a HEIC/HEIF photo; reading it needs the pillow-heif package "
                             "(pip install pillow-heif)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bomb and corrupt-EXIF warnings: we raise our own errors
            im = _open(data)
            fmt, (w, h) = im.format or "?", im.size
            alpha = _has_alpha(im)
            raw = fmt == "TIFF" and DNG_VERSION in getattr(im, "tag_v2", {})
            frames = _frames(im)
    except UnidentifiedImageError:
        return "?", (0, 0), False, 1  # Pillow cannot parse it (e.g. float RGB TIFF): OpenCV may
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageReadError(f"{name}: unreadable image header ({e})") from None
    if raw:  # a DNG whatever its name
        raise ImageReadError(f"{name}: {RAW_ADVICE}")
    if w < 1 or h < 1:
        raise ImageReadError(f"{name}: image has no pixels ({w}×{h})")
    if w * h > max_pixels:
        raise ImageReadError(f"{name}: {w}×{h} = {w * h / 1e6:.0f} megapixels is over the limit of "
                             f"{max_pixels / 1e6:.0f} megapixels")
    try:
        if fmt == "PNG":
            Image.open(io.BytesIO(data)).verify()  # every chunk's CRC, up to IEND
        elif fmt in ("JPEG", "MPO", "WEBP"):
            Image.open(io.BytesIO(data)).load()  # full decode: raises on a truncated stream
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for corrupt data
        raise ImageReadError(f"{name}: corrupt or truncated {fmt} ({e})") from None
    return fmt, (w, h), alpha, frames


@dataclass(frozen=True)
class Metadata:
    """What a photo file records beyond its pixels that an output should carry (:func:`encode_image`):
    the ICC colour profile, the colour space the pixels are in (a Display P3 photo written
    without it looks washed out), and the EXIF record (camera, date taken, exposure) with its
    orientation set to upright, as an output's pixels are what was read and must not be turned again."""

    icc_profile: bytes | None = None
    #: TIFF-structured EXIF, as a PNG ``eXIf`` chunk holds it (no ``Exif\0\0`` header)
    exif: bytes | None = None
    #: frames or pages in the file (animated GIF or WebP, multi-page TIFF): only the first is
    #: read, so an output holds one whatever this says
    frames: int = 1


#: The EXIF orientation tag, and the formats whose EXIF record describes the photo (a TIFF's
#: tags describe its own file layout instead).
ORIENTATION, EXIF_FORMATS = 0x0112, ("JPEG", "MPO", "PNG", "WEBP", "AVIF", "HEIF")


def photo_metadata(source: bytes | str | os.PathLike) -> Metadata:
    """The colour profile, EXIF record and frame count of an image (its bytes, or a file);
    empty for none or an unreadable file (what cannot be read, :func:`decode_image` reports)."""
    import io

    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data))
            exif = im.getexif() if im.format in EXIF_FORMATS else {}
            if ORIENTATION in exif:
                exif[ORIENTATION] = 1
            record = exif.tobytes().removeprefix(b"Exif\x00\x00") if exif else b""
            return Metadata(im.info.get("icc_profile") or None, record or None, _frames(im))
    except Exception:  # noqa: BLE001 - Pillow raises many types for odd files
        return Metadata()


def _profile_space(profile: bytes) -> str:
    """The colour space an ICC profile describes ("RGB", "GRAY", "CMYK", ...): header bytes 16-19."""
    return profile[16:20].decode("ascii", "replace").strip()


def _profile_fits(img: np.ndarray, profile: bytes) -> bool:
    """Whether an ICC profile describes ``img``'s pixels: a grey profile for grey, RGB for colour."""
    return _profile_space(profile) == ("GRAY" if img.ndim == 2 else "RGB")


def _with_chunks(png: bytes, chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A PNG from OpenCV with ``(type, data)`` chunks inserted right after ``IHDR``: OpenCV
    writes no profile or EXIF, and Pillow cannot write 16-bit colour PNGs."""
    end_of_ihdr = 8 + 4 + 4 + 13 + 4  # signature, then IHDR's length, type, 13 data bytes and CRC
    new = b"".join(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
                   for kind, body in chunks)
    return png[:end_of_ihdr] + new + png[end_of_ihdr:]


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to an RGB-order array (see module docstring)."""
    fmt, (w, h), alpha, frames = _header(data, name, max_pixels)
    if fmt in PILLOW_FORMATS:
        return _finish(_decode_upright_with_pillow(data, name), name, frames)
    buf = np.frombuffer(data, np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    decoded_alpha = img is not None and img.ndim == 3 and img.shape[2] in (2, 4)
    if decoded_alpha and fmt != "?" and not alpha:  # a fourth channel that is not alpha: a CMYK TIFF's K
        decoded_alpha = False
    if img is not None and not decoded_alpha:
        # No alpha: decode again with flags that apply the EXIF orientation and turn CMYK into
        # RGB, keeping depth.
        oriented = cv2.imdecode(buf, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
        img = oriented if oriented is not None else img
    if img is None and fmt == "?":
        raise ImageReadError(f"{name}: not an image file (or a format CleanVision cannot read)")
    if img is None or (alpha and not decoded_alpha and img.dtype == np.uint8):
        img = _decode_with_pillow(data, name)  # palette GIFs OpenCV cannot read; alpha it drops (grey+alpha TIFF)
    if fmt == "?" and img.shape[0] * img.shape[1] > max_pixels:  # header was unreadable to Pillow;
        # OpenCV's own guard (CV_IO_MAX_IMAGE_PIXELS, 1 gigapixel) bounded the decode
        raise ImageReadError(f"{name}: {img.shape[1]}×{img.shape[0]} is over the limit of "
                             f"{max_pixels / 1e6:.0f} megapixels")
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        raise ImageReadError(f"{name}: unsupported sample type {img.dtype} (use 8/16-bit or float32)")
    if img.dtype == np.float32 and not np.isfinite(img).all():
        raise ImageReadError(f"{name}: float image contains NaN or infinite values")
    return _finish(img, name, frames)


def _finish(img: np.ndarray, name: str, frames: int) -> np.ndarray:
    """A decoded image in OpenCV's layout (BGR, BGRA, grey or H×W×1) as this module returns it:
    RGB order, grey as H×W; warning when the file held more frames than the one read."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] >= 3:
        code = cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB
        img = cv2.cvtColor(img, code)
    if frames > 1:
        warnings.warn(f"{name}: {frames} frames (or pages); only the first is read", NotKept, stacklevel=2)
    return np.ascontiguousarray(img)


def _decode_upright_with_pillow(data: bytes, name: str) -> np.ndarray:
    """A HEIF or AVIF photo in OpenCV's layout, turned by its EXIF orientation as OpenCV turns a
    JPEG (pillow-heif applies HEIF's own rotation and resets the tag); grey stays grey. Colour
    comes in 8 bits a sample (Pillow and pillow-heif scale a 10-bit photo down)."""
    from PIL import ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = ImageOps.exif_transpose(_open(data))
            if im.mode in ("L", "I;16"):  # grey, 8 or 16 bits as stored
                return np.asarray(im).astype(np.uint8 if im.mode == "L" else np.uint16)
            mode = "RGBA" if _has_alpha(im) else "RGB"
            return cv2.cvtColor(np.asarray(im.convert(mode)), cv2.COLOR_RGBA2BGRA if mode == "RGBA" else cv2.COLOR_RGB2BGR)
    except Exception as e:  # noqa: BLE001 - Pillow and its plugins raise many types for corrupt data
        raise ImageReadError(f"{name}: corrupt or truncated image ({e})") from None


def _decode_with_pillow(data: bytes, name: str) -> np.ndarray:
    import io

    try:
        im = Image.open(io.BytesIO(data))
        im.seek(0)
        mode = "RGBA" if _has_alpha(im) else "RGB"
        return cv2.cvtColor(np.asarray(im.convert(mode)),
                            cv2.COLOR_RGBA2BGRA if mode == "RGBA" else cv2.COLOR_RGB2BGR)
    except Exception as e:  # noqa: BLE001
        raise ImageReadError(f"{name}: cannot decode image ({e})") from None


def _file_bytes(p: Path) -> bytes:
    if p.is_dir():
        raise ImageReadError(f"{p}: is a folder, not an image")
    try:
        return p.read_bytes()
    except OSError as e:
        raise ImageReadError(f"{p}: cannot open ({e.strerror or e})") from None


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file (see module docstring for what comes back)."""
    p = Path(path)
    return decode_image(_file_bytes(p), str(p), max_pixels)


def read_photo(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, Metadata]:
    """:func:`read_image` and :func:`photo_metadata` of a file read once: what restoring a file
    into a new one needs."""
    p = Path(path)
    data = _file_bytes(p)
    return decode_image(data, str(p), max_pixels), photo_metadata(data)


# ---------------------------------------------------------------------------- writing


def encode_image(img: np.ndarray, suffix: str = ".png", metadata: Metadata | None = None, name: str = "") -> bytes:
    """Encode losslessly (PNG or TIFF), keeping the bit depth. RGB order in; grey+alpha becomes RGBA.

    TIFFs use :data:`TIFF_PARAMS` (deflate, no predictor). ``metadata`` (the input's, from
    :func:`photo_metadata`) goes into a PNG: the EXIF record, and the colour profile where it
    fits the channels (an RGB profile into a colour PNG, a grey one into a grey PNG). What
    cannot be kept (anything, in a TIFF; a CMYK photo's profile, whose pixels were read as RGB)
    a :class:`~cleanvision.errors.NotKept` warning names, with ``name``."""
    if suffix.lower() not in WRITE_SUFFIXES:
        raise ImageWriteError(f"cannot write {suffix} losslessly; use one of {', '.join(WRITE_SUFFIXES)}")
    if img.dtype not in (np.uint8, np.uint16) and not (img.dtype == np.float32 and suffix.lower() != ".png"):
        raise ImageWriteError(f"cannot encode {img.dtype} images as {suffix}; use uint8/uint16 (PNG, TIFF) "
                              "or float32 (TIFF)")
    if img.ndim == 3 and img.shape[2] == 2:  # grey + alpha: OpenCV writes no LA, so store as RGBA
        img = np.dstack([img[..., 0], img[..., 0], img[..., 0], img[..., 1]])
    if img.ndim == 3 and img.shape[2] >= 3:
        code = cv2.COLOR_RGBA2BGRA if img.shape[2] == 4 else cv2.COLOR_RGB2BGR
        img = cv2.cvtColor(img, code)
    tiff = suffix.lower() in (".tif", ".tiff")
    ok, buf = cv2.imencode(suffix.lower(), img, list(TIFF_PARAMS) if tiff else [])
    if not ok:
        raise ImageWriteError(f"OpenCV could not encode a {img.shape} {img.dtype} image as {suffix}")
    meta, lost, chunks = metadata or Metadata(), not_kept(img, suffix, metadata), []
    if not tiff and meta.icc_profile and _profile_fits(img, meta.icc_profile):
        chunks.append((b"iCCP", b"ICC profile\x00\x00" + zlib.compress(meta.icc_profile)))
    if not tiff and meta.exif:
        chunks.append((b"eXIf", meta.exif))
    if lost:
        warnings.warn(f"{name or 'image'}: not kept: {' and '.join(lost)}", NotKept, stacklevel=2)
    return _with_chunks(buf.tobytes(), chunks) if chunks else buf.tobytes()


def not_kept(img: np.ndarray, suffix: str, metadata: Metadata | None) -> list[str]:
    """What of ``metadata`` a file of ``img`` written as ``suffix`` by :func:`encode_image`
    cannot hold, in words for a person, the last with why ("its EXIF record: a TIFF output
    holds no metadata here"); empty when everything fits."""
    meta, tiff = metadata or Metadata(), suffix.lower() in (".tif", ".tiff")
    lost = []
    if meta.icc_profile and (tiff or not _profile_fits(img, meta.icc_profile)):
        lost.append(f"its {_profile_space(meta.icc_profile)} colour profile"
                    + ("" if tiff else f" (it does not fit the {'GRAY' if img.ndim == 2 else 'RGB'} output)"))
    if meta.exif and tiff:
        lost.append("its EXIF record")
    if lost and tiff:
        lost[-1] += ": a TIFF output holds no metadata here"
    return lost


def write_image(path: str | os.PathLike, img: np.ndarray, overwrite: bool = False,
                metadata: Metadata | None = None) -> Path:
    """Write losslessly and atomically, with the input's ``metadata`` where the format holds it
    (:func:`encode_image`); refuse to replace an existing file unless ``overwrite``
    (:class:`~cleanvision.errors.OutputExistsError`, an ``ImageWriteError``)."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise OutputExistsError(p)
    return write_file(p, encode_image(img, p.suffix or ".png", metadata, p.name), overwrite)


def write_file(path: str | os.PathLike, data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` atomically: a temporary file beside ``path``, renamed into place (linked
    when not ``overwrite``, so a file that appeared meanwhile is never clobbered), with the mode
    ``open()`` would give; nothing half-written is left, even on Ctrl-C. The one atomic writer
    for images, exported models and the CLI's records."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes 0600; give what open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, p)
        else:
            _link_new(tmp, p)
    except FileExistsError:  # it appeared while this was being written
        raise OutputExistsError(p) from None
    except OSError as e:
        raise ImageWriteError(f"{p}: cannot write ({e.strerror or e})") from None
    finally:  # also on Ctrl-C: never leave the temporary file behind
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


def _link_new(tmp: str, dest: Path) -> None:
    """Move ``tmp`` to ``dest`` only if ``dest`` does not exist (atomically where links work)."""
    try:
        os.link(tmp, dest)  # fails if dest appeared meanwhile: never clobber
    except FileExistsError:
        raise
    except OSError:  # file systems without hard links
        if dest.exists():
            raise FileExistsError(dest) from None
        os.replace(tmp, dest)


def umask() -> int:
    """This process's umask, read without changing it where Linux reports it (/proc), so
    other threads never see a changed umask."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)  # elsewhere: the only portable way to read it
    os.umask(old)
    return old


def file_mode() -> int:
    """The permission bits a new file made by plain ``open()`` gets: ``0o666`` less the umask."""
    return 0o666 & ~umask()


def give_open_mode(path: str | os.PathLike) -> None:
    """Set ``path``'s permissions to :func:`file_mode`, for files that other libraries write
    through ``mkstemp`` (0600), such as safetensors weights."""
    os.chmod(path, file_mode())
