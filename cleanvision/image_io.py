"""Reading and writing images without surprises.

* Reads PNG, JPEG, TIFF, BMP, WebP (and the first frame of a GIF) as **RGB order** numpy
  arrays: ``H×W`` grey, ``H×W×3`` colour, ``H×W×4`` colour + alpha, ``H×W×2`` grey + alpha;
  8-bit (uint8), 16-bit (uint16) or float32 TIFF, exactly as stored, EXIF orientation applied.
* Checks the pixel count from the header **before** decoding (decompression bombs), and
  that the file decodes completely (truncated files are errors, not grey blocks).
* Writes losslessly (PNG, TIFF) with the input's bit depth, atomically: a temporary file in
  the same folder renamed into place, so a crash never leaves a half-written output, and
  never over an existing file unless asked.

Every problem raises :class:`~cleanvision.errors.ImageReadError` or
:class:`~cleanvision.errors.ImageWriteError` with a one-line message naming the file.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageReadError, ImageWriteError

#: Default largest image accepted, in pixels (about a 100-megapixel photo).
MAX_PIXELS = 100_000_000
READ_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif")
WRITE_SUFFIXES = (".png", ".tif", ".tiff")


def _header(data: bytes, name: str, max_pixels: int) -> tuple[str, tuple[int, int], bool]:
    """Format, size and whether there is alpha, from the header only; verify PNG chunks and
    JPEG completeness."""
    import io

    if not data:
        raise ImageReadError(f"{name}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bomb and corrupt-EXIF warnings: we raise our own errors
            old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # we apply our own limit
            try:
                im = Image.open(io.BytesIO(data))
            finally:
                Image.MAX_IMAGE_PIXELS = old
            fmt, (w, h) = im.format or "?", im.size
            alpha = "A" in im.mode or "transparency" in im.info
    except UnidentifiedImageError:
        return "?", (0, 0), False  # Pillow cannot parse it (e.g. float RGB TIFF): OpenCV may
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageReadError(f"{name}: unreadable image header ({e})") from None
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
    return fmt, (w, h), alpha


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to an RGB-order array (see module docstring)."""
    fmt, (w, h), alpha = _header(data, name, max_pixels)
    buf = np.frombuffer(data, np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    decoded_alpha = img is not None and img.ndim == 3 and img.shape[2] in (2, 4)
    if img is not None and not decoded_alpha:
        # No alpha: decode again with flags that apply the EXIF orientation, keeping depth.
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
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] >= 3:
        code = cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB
        img = cv2.cvtColor(img, code)
    return np.ascontiguousarray(img)


def _decode_with_pillow(data: bytes, name: str) -> np.ndarray:
    import io

    try:
        im = Image.open(io.BytesIO(data))
        im.seek(0)
        mode = "RGBA" if "A" in im.mode or "transparency" in im.info else "RGB"
        return cv2.cvtColor(np.asarray(im.convert(mode)),
                            cv2.COLOR_RGBA2BGRA if mode == "RGBA" else cv2.COLOR_RGB2BGR)
    except Exception as e:  # noqa: BLE001
        raise ImageReadError(f"{name}: cannot decode image ({e})") from None


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file (see module docstring for what comes back)."""
    p = Path(path)
    if p.is_dir():
        raise ImageReadError(f"{p}: is a folder, not an image")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ImageReadError(f"{p}: cannot open ({e.strerror or e})") from None
    return decode_image(data, str(p), max_pixels)


def encode_image(img: np.ndarray, suffix: str = ".png") -> bytes:
    """Encode losslessly (PNG or TIFF), keeping the bit depth. RGB order in; grey+alpha becomes RGBA."""
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
    ok, buf = cv2.imencode(suffix.lower(), img)
    if not ok:
        raise ImageWriteError(f"OpenCV could not encode a {img.shape} {img.dtype} image as {suffix}")
    return buf.tobytes()


def write_image(path: str | os.PathLike, img: np.ndarray, overwrite: bool = False) -> Path:
    """Write losslessly and atomically; refuse to replace an existing file unless ``overwrite``."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise ImageWriteError(f"{p}: already exists (pass overwrite=True / --overwrite to replace it)")
    data = encode_image(img, p.suffix or ".png")
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, p)
        else:
            _link_new(tmp, p)
    except FileExistsError:
        raise ImageWriteError(f"{p}: already exists (pass --overwrite to replace it)") from None
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
