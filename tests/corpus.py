"""A corpus of awkward and broken image files, generated (no committed binaries).

Each case says what the library must do with it: raise ``ImageReadError`` (``error`` is a
regex the message must match) or decode to the given shape and dtype.
"""
from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from skimage import data


@dataclass
class Case:
    name: str
    path: Path
    error: str | None = None       # regex of the ImageReadError message, or None if readable
    shape: tuple | None = None
    dtype: type | None = None


def _png(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


def _with_ihdr(png: bytes, width: int, height: int, fix_crc: bool = True) -> bytes:
    """Rewrite the IHDR size of a PNG (a tiny file that declares a huge image)."""
    ihdr = bytearray(png[8:33])
    ihdr[8:16] = struct.pack(">II", width, height)
    if fix_crc:
        ihdr[21:25] = struct.pack(">I", zlib.crc32(bytes(ihdr[4:21])) & 0xFFFFFFFF)
    return png[:8] + bytes(ihdr) + png[33:]


def _pil(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def build(folder: Path) -> list[Case]:
    folder.mkdir(parents=True, exist_ok=True)
    rgb = data.astronaut()[::4, ::4].copy()            # 128×128 RGB
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    grey = data.camera()[::4, ::4].copy()
    good_png = _png(bgr)
    good_jpg = cv2.imencode(".jpg", bgr)[1].tobytes()
    corrupt = bytearray(good_png)
    corrupt[len(corrupt) // 2] ^= 0xFF                   # flip bits inside IDAT; CRC now wrong
    rgba = np.dstack([bgr, np.tile(np.arange(128, dtype=np.uint8), (128, 1))])
    exif = Image.Exif()
    exif[0x0112] = 6                                     # "rotate 90° clockwise to display"
    wide = Image.fromarray(rgb[:64])                     # 128 wide, 64 high as stored
    nan = np.full((16, 16), 0.5, np.float32)
    nan[3, 3], nan[4, 4] = np.nan, np.inf
    frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    files = {
        "empty.png": (b"", "empty file"),
        "text.png": (b"this is not an image\n" * 10, "not an image"),
        "truncated.png": (good_png[: len(good_png) // 2], "truncated|corrupt"),
        "truncated.jpg": (good_jpg[: len(good_jpg) // 2], "truncated|corrupt"),
        "bad crc.png": (bytes(corrupt), "corrupt|CRC|truncated"),
        "bomb.png": (_with_ihdr(_png(np.zeros((1, 1), np.uint8)), 50_000, 50_000), "over the limit"),
        "nan.tif": (cv2.imencode(".tiff", nan)[1].tobytes(), "NaN or infinite"),
        "one pixel.png": (_png(bgr[:1, :1]), None, (1, 1, 3), np.uint8),
        "row 1xN.png": (_png(bgr[:1]), None, (1, 128, 3), np.uint8),
        "grey16.png": (_png(grey.astype(np.uint16) * 257), None, (128, 128), np.uint16),
        "colour16.png": (_png(bgr.astype(np.uint16) * 257), None, (128, 128, 3), np.uint16),
        "rgba.png": (_png(rgba), None, (128, 128, 4), np.uint8),
        "grey_alpha.png": (_pil(Image.fromarray(np.dstack([grey, grey]), "LA"), "PNG"), None, (128, 128, 4), np.uint8),
        "grey_alpha_tiff.tif": (_pil(Image.fromarray(np.dstack([grey, grey]), "LA"), "TIFF"), None, (128, 128, 4), np.uint8),
        "palette.png": (_pil(Image.fromarray(rgb).convert("P"), "PNG"), None, (128, 128, 3), np.uint8),
        "cmyk.jpg": (_pil(Image.fromarray(rgb).convert("CMYK"), "JPEG"), None, (128, 128, 3), np.uint8),
        "rotated exif.jpg": (_pil(wide, "JPEG", exif=exif), None, (128, 64, 3), np.uint8),
        "animated.gif": (gif.getvalue(), None, (128, 128, 3), np.uint8),
        "float.tif": (cv2.imencode(".tiff", np.full((16, 16), 0.25, np.float32))[1].tobytes(), None, (16, 16), np.float32),
        "webp.webp": (cv2.imencode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes(), None,
                      (128, 128, 3), np.uint8),
        "bmp.bmp": (cv2.imencode(".bmp", bgr)[1].tobytes(), None, (128, 128, 3), np.uint8),
    }
    cases = []
    for name, (content, error, *rest) in files.items():
        p = folder / name
        p.write_bytes(content)
        cases.append(Case(name, p, error, *(rest or (None, None))))
    # a non-UTF-8 file name (bytes path): must be readable and reported without crashing
    raw = bytes(folder) + b"/caf\xe9 photo.png"
    with open(raw, "wb") as f:
        f.write(good_png)
    cases.append(Case("non-utf8 name", Path(raw.decode("utf-8", "surrogateescape")), None, (128, 128, 3), np.uint8))
    return cases
