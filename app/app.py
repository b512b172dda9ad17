#!/usr/bin/env python
"""CleanVision web app: restore a photo, or watch the model undo noise you add yourself.

    python app/app.py [--model DIR_OR_HUB_REPO] [--revision REV] [--host 127.0.0.1] [--port 7860]

The model is loaded once at start: the weights shipped in the ``cleanvision`` package by
default (works offline); a folder or a Hub repo id from ``--model`` or ``CLEANVISION_MODEL``
(``--revision`` / ``CLEANVISION_REVISION`` pin a Hub revision). On a Hugging Face Space
(``SPACE_ID`` is set) the default is the Hub repo :data:`HUB_REPO`.

Uploads are read as raw files and decoded by :func:`cleanvision.image_io.decode_image`, so
16-bit depth, alpha, the colour profile and EXIF orientation survive; the download is a lossless
full-resolution PNG with the input's bit depth, colour profile and EXIF record (float TIFFs: a float32 TIFF,
as the CLI writes them).

The two handlers, :func:`restore` and :func:`degrade_and_restore`, are plain functions of the
denoiser and the inputs (tests call them directly); :func:`build_demo` makes the page and its
API endpoints ``/restore`` and ``/degrade_and_restore`` from them, and :func:`launch` serves it,
with Gradio's MCP server at ``/gradio_api/mcp/`` offering the same two as the tools ``restore``
and ``degrade_and_restore``. A number outside its range (:data:`FIELDS`) is refused, not clamped.

A noise-map model (``Denoiser.takes_noise_level``) gets a "Noise level" control on both tabs
and the ``noise_level`` parameter: empty or "auto" lets the model estimate it (the status says
what it found), a number sets σ. A blind model (one trained without a noise-level input) finds
it itself: the control is hidden, and a number is refused.
"""
from __future__ import annotations

import argparse
import base64
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

try:
    import cleanvision  # noqa: F401
except ImportError:  # a checkout without `pip install -e .`: use the package beside app/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import gradio as gr

from cleanvision import CleanVisionError, Denoiser, ImageReadError, metrics
from cleanvision.errors import NotKept
from cleanvision.image_io import (Metadata, decode_image, dtype_white, encode_image, join_alpha, not_kept,
                                  output_suffix, photo_metadata, split_alpha, write_image)
from cleanvision.inference import MODEL_ENV
from cleanvision.noise import apply_noise
from cleanvision.options import NOISE_LEVEL_RANGE

log = logging.getLogger("cleanvision.app")
warnings.filterwarnings("ignore", category=NotKept)  # the status line says what the outputs could not keep

#: The Hub repo the hosted Space pulls its weights from.
HUB_REPO = "cleanvision/cleanvision-dncnn"
REVISION_ENV = "CLEANVISION_REVISION"
#: Largest upload, in bytes (enforced by Gradio's upload route and again in the handlers).
MAX_FILE_MB = 25
MAX_FILE_BYTES = MAX_FILE_MB * 1024 * 1024
#: Largest image restored, in pixels (checked from the header before decoding).
MAX_PIXELS = 40_000_000
#: Clean images in the synthetic-noise demo are scaled down to this many pixels.
SYNTH_MAX_PIXELS = 4_000_000
#: Displayed images are scaled down to this long side; the download is always full size.
PREVIEW_MAX_SIDE = 4096
#: Waiting requests beyond the one being restored (2 vCPUs: one restore at a time).
QUEUE_SIZE = 16
#: Both restoring events share one worker: one restore at a time, whichever section.
CONCURRENCY_ID = "denoiser"
#: Output files older than this are deleted (seconds).
KEEP_OUTPUTS_S = 3600
#: Clean example images from scikit-image (they ship inside the PyPI package).
CLEAN_EXAMPLES = ("astronaut", "coffee", "chelsea")
#: Damaged examples for "Restore my photo": (image, noise, seed).
NOISY_EXAMPLES = (
    ("chelsea", {"sigma": 20, "scribbles": 4, "thickness": 3}, 1),
    ("coffee", {"salt_pepper": 0.08, "speckle_var": 0.03}, 2),
    ("astronaut", {"sigma": 25}, 3),
)
OUT_DIR = Path(tempfile.gettempdir()) / "cleanvision-app"


class Field(NamedTuple):
    """One numeric input: its valid range (inclusive), whether it must be a whole number, its
    default (None for ``noise_level``: estimated from the photo)."""
    lo: float
    hi: float
    whole: bool
    default: float | None


def _plain(x: float) -> float:
    """75.0 as 75, so a range reads [0, 75] as the others do."""
    return int(x) if float(x).is_integer() else x


#: Every numeric input by its API name: the sliders are built from these, and a value outside
#: them is refused (never clamped), whichever way it came (page, API, MCP).
FIELDS = {
    "strength": Field(0, 1, False, 1),  # the library's own range (Denoiser.__call__)
    "sigma": Field(0, 75, False, 25),
    "salt_pepper": Field(0, 0.3, False, 0),
    "speckle_var": Field(0, 0.1, False, 0),
    "scribbles": Field(0, 10, True, 0),
    "thickness": Field(1, 8, True, 3),
    "seed": Field(0, 2**63 - 1, True, 0),
    "jpeg_quality": Field(0, 100, True, 0),  # 0: not saved as JPEG
    # σ on the 0-255 scale, the library's own range; None (or "auto", or ""): estimated from the photo
    "noise_level": Field(_plain(NOISE_LEVEL_RANGE[0]), _plain(NOISE_LEVEL_RANGE[1]), False, None),
}
#: Where the noise-level slider starts, before a photo's estimate is shown on it.
NOISE_LEVEL_START = 25
#: The words that ask for the estimated noise level, as None does (compared stripped, lower case).
AUTO_WORDS = ("", "auto")


# ---------------------------------------------------------------------------- model


def model_name(model: str | None = None) -> str | None:
    """The model to load: ``model``, else $CLEANVISION_MODEL, else HUB_REPO on a Space, else None (shipped)."""
    if model:
        return model
    if os.environ.get(MODEL_ENV):
        return os.environ[MODEL_ENV]
    return HUB_REPO if os.environ.get("SPACE_ID") else None


def load_denoiser(model: str | None = None, revision: str | None = None) -> Denoiser:
    """Load the model once and run one small forward pass so the first visitor does not wait."""
    model = model_name(model)
    revision = revision or os.environ.get(REVISION_ENV) or None
    t0 = time.perf_counter()
    den = Denoiser.from_pretrained(model, revision=revision)
    den(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))  # warm-up
    log.info("model %s%s (%s engine) loaded and warmed up in %.1f s", model or "shipped in the package",
             f"@{revision}" if revision else "", den.engine, time.perf_counter() - t0)
    return den


# ---------------------------------------------------------------------------- helpers


def _new_folder() -> Path:
    """A fresh folder for one request's files; old request folders are swept away."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in OUT_DIR.iterdir():
        try:
            if old.name.startswith("req-") and now - old.stat().st_mtime > KEEP_OUTPUTS_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    folder = OUT_DIR / f"req-{uuid.uuid4().hex}"
    folder.mkdir()
    return folder


def refuse(message: str, title: str = "Error") -> gr.Error:
    """A ``gr.Error`` for the visitor, logged as one line (no traceback: a refused upload is
    not a bug in the app)."""
    log.warning("refused: %s", " ".join(message.split()))
    return gr.Error(message, title=title, print_exception=False)


class Upload(NamedTuple):
    image: np.ndarray
    name: str
    #: for the status line: "" or, for an animated GIF or a multi-page TIFF, that only its first frame was used
    note: str
    #: its colour profile and EXIF record, written into the outputs, and its frame count
    metadata: Metadata


def read_upload(payload: dict | str | None, what: str = "an image") -> Upload:
    """Decode an uploaded file, turning every problem into a ``gr.Error`` the visitor can read.

    The handlers run with ``preprocess=False``: ``gr.Image`` would open the upload with Pillow
    first (a bad file fails there with a generic message; numpy mode makes 16-bit 8-bit), so
    they get Gradio's file payload (a dict with the cached ``path``; a plain path works too)
    and decode the original bytes here.
    """
    name = None
    if isinstance(payload, dict):
        name = payload.get("orig_name")
        url = payload.get("url") or ""
        path = payload.get("path")
        if not path and url.startswith("data:"):  # an inline image: decode it ourselves
            try:
                data = base64.b64decode(url.split(",", 1)[1], validate=False)
            except (IndexError, ValueError):
                raise refuse("The uploaded image data is not valid base64.", "Cannot read this image") from None
            path = _new_folder() / "upload"
            path.write_bytes(data)
    else:
        path = payload
    if not path:
        raise refuse(f"Upload {what} first.", "No image")
    p = Path(path)
    name = Path(name or p.name).name
    try:
        size = p.stat().st_size
    except OSError:
        raise refuse(f"{name}: the upload could not be read; please upload it again.") from None
    if size > MAX_FILE_BYTES:
        raise refuse(f"{name}: {size / 2**20:.1f} MB is over the upload limit of {MAX_FILE_MB} MB.",
                     "File too large")
    data = p.read_bytes()
    try:
        img = decode_image(data, name, max_pixels=MAX_PIXELS)
    except ImageReadError as e:
        raise refuse(str(e), "Cannot read this image") from None
    meta = photo_metadata(data)
    note = f" Only the first of its {meta.frames} frames (or pages) was used." if meta.frames > 1 else ""
    return Upload(img, name, note, meta)


#: Uploads the page shows as a lossless PNG of the same pixels and metadata: Chrome and Firefox
#: show neither HEIC nor TIFF (a broken image where the photo should be), and restoring that PNG
#: gives what restoring the file gives.
SHOWN_AS_PNG = (".heic", ".heif", ".tif", ".tiff")


def show_upload(payload: dict | str | None):
    """On upload: a HEIC or TIFF as a PNG the browser can show (the pixels as they are restored,
    with the photo's profile and EXIF, named like it); anything else as it is (``gr.skip``). An
    unreadable upload is refused now, not when Restore is pressed, and of a file with several
    frames the visitor is told that only the first will be used."""
    if not payload:
        return gr.skip()
    upload = read_upload(payload)
    if upload.metadata.frames > 1:
        gr.Info(f"{upload.name}: only the first of its {upload.metadata.frames} frames (or pages) will be restored.")
    img, meta = upload.image, upload.metadata
    if (Path(upload.name).suffix.lower() not in SHOWN_AS_PNG or output_suffix(img) != ".png"
            or not_kept(img, ".png", meta)):  # float, or a profile a PNG of it cannot hold: keep the file
        return gr.skip()
    path = _new_folder() / f"{Path(upload.name).stem[:80] or 'image'}.png"
    path.write_bytes(encode_image(img, ".png", meta))
    return str(path)


def checked(name: str, value: float | str | None) -> float:
    """``value`` of the numeric input ``name`` (a key of :data:`FIELDS`), None meaning its default.

    Out of range is refused with the valid range, never clamped: the handlers run with
    ``preprocess=False`` (Gradio's own checks are skipped) and API callers send anything, so
    an API caller's strength 1.5 must not quietly become 1.
    """
    field = FIELDS[name]
    if value is None:
        return field.default
    span = f"[{field.lo}, {field.hi}]"
    kind = "a whole number in" if field.whole else "in"
    shown = repr(value) if isinstance(value, str) else str(value)
    try:
        if isinstance(value, bool):
            raise TypeError
        x = int(value) if isinstance(value, (int, np.integer)) else float(value)  # ints stay exact
    except (TypeError, ValueError):
        raise refuse(f"{name} must be a number {kind} {span}, got {shown}.", "Invalid input") from None
    if field.whole and isinstance(x, float) and x.is_integer():
        x = int(x)
    if not field.lo <= x <= field.hi or (field.whole and not isinstance(x, int)):  # NaN fails too
        raise refuse(f"{name} must be {kind} {span}, got {shown}.", "Out of range")
    return x


def noise_level_of(den: Denoiser, value: float | str | None) -> float | None:
    """The ``noise_level`` input: None (estimate it) for None, "" or "auto"; else σ, checked
    against :data:`FIELDS` as the other numbers are. A blind model refuses any number: it finds
    the noise level itself, and quietly ignoring a level the caller chose would mislead."""
    if value is None or (isinstance(value, str) and value.strip().lower() in AUTO_WORDS):
        return None
    if not den.takes_noise_level:
        shown = repr(value) if isinstance(value, str) else str(value)
        raise refuse(f"This model is blind: it finds the noise level itself; leave noise_level empty "
                     f'(or "auto"), got {shown}.', "Invalid input")
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            f = FIELDS["noise_level"]
            raise refuse(f'noise_level must be "auto" (or empty) or a number in [{f.lo}, {f.hi}], got {value!r}.',
                         "Invalid input") from None
    return checked("noise_level", value)


def _describe(img: np.ndarray) -> str:
    h, w = img.shape[:2]
    channels = 1 if img.ndim == 2 else img.shape[2]
    kind = {1: "grey", 2: "grey + alpha", 3: "RGB", 4: "RGB + alpha"}[channels]
    depth = {np.dtype(np.uint8): "8-bit", np.dtype(np.uint16): "16-bit"}.get(img.dtype, "float")
    return f"{w}×{h} {kind} {depth}"


def to_display(img: np.ndarray) -> np.ndarray:
    """8-bit grey/RGB/RGBA for the browser, scaled down to PREVIEW_MAX_SIDE if larger."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    h, w = img.shape[:2]
    if max(h, w) > PREVIEW_MAX_SIDE:  # first, so the conversions below stay small
        f = PREVIEW_MAX_SIDE / max(h, w)
        img = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)  # = round(x / 257)
    elif img.dtype != np.uint8:
        img = np.rint(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 2:  # grey + alpha -> RGBA
        img = np.concatenate([np.repeat(img[..., :1], 3, axis=2), img[..., 1:]], axis=2)
    return img


def _save_display(img: np.ndarray, path: Path, metadata: Metadata | None = None) -> str:
    path.write_bytes(encode_image(to_display(img), ".png", metadata))  # browsers show a profile's colours
    return str(path)


def _no_progress(*args, **kwargs) -> None:
    pass


class Restored(NamedTuple):
    image: np.ndarray
    seconds: float
    #: σ restored with: the estimate in auto mode, the one given, None for a blind model
    level: float | None
    #: how it was chosen, in words ("noise level: auto, estimated σ 7.3"); "" for a blind model
    level_note: str


def _by_brightness_note(level_map) -> str:
    """" (by brightness: σ 12-35)" when auto mode's map follows the photo's brightness (speckle)."""
    if not isinstance(level_map, np.ndarray) or float(np.ptp(level_map)) < 0.5:
        return ""
    return f" (by brightness: σ {level_map.min():.0f}-{level_map.max():.0f})"


def _restore(den: Denoiser, img: np.ndarray, strength: float, noise_level: float | None,
             progress) -> Restored:
    """Restore ``img``; with a noise-map model in auto mode (``noise_level`` None) the level the
    model estimates is measured too (:meth:`Denoiser.estimate_noise_level`: the one the restore
    uses), for the visitor to see."""
    t0 = time.perf_counter()
    level, note = noise_level, ""
    try:
        if den.takes_noise_level and noise_level is None:
            progress(0, desc="Estimating the noise level")
            if den.model.noise_map == 1:  # the map is the whole estimate: restore with it, not estimate twice
                noise_level = den.auto_noise_map(img)
                level = den.level_of(noise_level)
            else:
                level = den.estimate_noise_level(img)
            note = f"noise level: auto, estimated σ {level:.1f}{_by_brightness_note(noise_level)}"
        elif den.takes_noise_level:
            note = f"noise level: σ {noise_level:g}, as set"
        progress(0, desc="Restoring")

        def tick(done: int, total: int) -> None:
            progress((done, total), desc="Restoring", unit="tiles")

        out = den(img, progress=tick, strength=strength, noise_level=noise_level)
    except (CleanVisionError, ValueError) as e:
        raise refuse(f"Cannot restore this image: {e}") from None
    except MemoryError:
        raise refuse("Not enough memory to restore this image; try a smaller one.") from None
    return Restored(out, time.perf_counter() - t0, level, note)


def _quality(clean: np.ndarray, other: np.ndarray) -> tuple[float, float | None]:
    """PSNR (dB) and SSIM against the clean image, on the 0-255 scale, colour channels only."""
    s = 255.0 / dtype_white(clean.dtype)
    a = split_alpha(clean)[0].astype(np.float64) * s
    b = split_alpha(other)[0].astype(np.float64) * s
    psnr = float(metrics.psnr(a, b, 255.0)[0])
    ssim = float(metrics.ssim(a, b, 255.0)[0]) if min(a.shape[:2]) >= 11 else None
    return psnr, ssim


def _fmt_psnr(v: float) -> str:
    return "∞ (identical)" if v > 150 else f"{v:.2f} dB"


def _fmt_ssim(v: float | None) -> str:
    return "n/a (image too small)" if v is None else f"{v:.4f}"


def _strength_note(strength: float) -> str:
    return "" if strength == 1.0 else f" at strength {strength:g}"


def _level_note(r: Restored) -> str:
    return f"; {r.level_note}" if r.level_note else ""


# ---------------------------------------------------------------------------- the handlers


def restore(den: Denoiser, image: dict | str | None, strength: float | None = 1.0,
            noise_level: float | str | None = None, progress=None) -> tuple[tuple[str, str], str, str]:
    """Restore an uploaded image: ``((before, after) previews, the download, a status line)``.

    ``image`` is Gradio's file payload or a path; ``strength`` in [0, 1] (1: full restoration,
    0: the input unchanged); ``noise_level`` (noise-map models) None or "auto" to estimate it
    (the status line gives the estimate), or σ in [0, 75]; ``progress`` is a ``gr.Progress`` or
    None. The download is the restored image at full resolution, lossless, with the input's bit
    depth and alpha: a PNG, or a float32 TIFF for float input. Problems raise ``gr.Error`` with
    a message for the visitor.
    """
    return _restore_photo(den, image, strength, noise_level, progress)[:3]


def _restore_photo(den: Denoiser, image: dict | str | None, strength: float | None,
                   noise_level: float | str | None, progress) -> tuple[tuple[str, str], str, str, float | None]:
    """:func:`restore`'s outputs and the noise level restored with (for the page's slider)."""
    progress = progress or _no_progress
    strength = checked("strength", strength)  # before decoding: a refusal costs nothing
    noise_level = noise_level_of(den, noise_level)
    img, name, frames_note, metadata = read_upload(image, "a noisy photo")
    r = _restore(den, img, strength, noise_level, progress)
    out = r.image
    folder = _new_folder()
    stem = Path(name).stem[:80] or "image"
    download = folder / f"{stem}_restored{output_suffix(out, '.png')}"
    try:
        download.write_bytes(encode_image(out, download.suffix, metadata))
    except CleanVisionError as e:
        raise refuse(f"Cannot save the result: {e}") from None
    before = _save_display(img, folder / "before.png", metadata)
    after = _save_display(out, folder / "after.png", metadata)
    extra = ", alpha kept" if split_alpha(img)[1] is not None else ""
    kind = {np.dtype(np.uint8): "8-bit PNG", np.dtype(np.uint16): "16-bit PNG"}.get(out.dtype, "float32 TIFF")
    preview = (f" Previews are scaled to {PREVIEW_MAX_SIDE} px; the download is full size."
               if max(img.shape[:2]) > PREVIEW_MAX_SIDE else "")
    lost = not_kept(out, download.suffix, metadata)
    lost_note = f" It could not keep {' and '.join(lost)}." if lost else ""
    status = (f"**Restored** {_describe(img)}{_strength_note(strength)} in **{r.seconds:.2f} s**{_level_note(r)}. "
              f"Download: lossless {kind} at full resolution{extra}.{lost_note}{preview}{frames_note}")
    return (before, after), str(download), status, r.level


def degrade_and_restore(den: Denoiser, clean_image: dict | str | None, sigma: float | None = 25,
                        salt_pepper: float | None = 0.0, speckle_var: float | None = 0.0,
                        scribbles: float | None = 0, thickness: float | None = 3, seed: float | None = 0,
                        strength: float | None = 1.0, jpeg_quality: float | None = 0,
                        noise_level: float | str | None = None, progress=None) -> tuple[str, str, str]:
    """Add the chosen noise to a clean image (seeded), restore it: ``(noisy preview, restored
    preview, a PSNR/SSIM report against the clean image)``. Arguments as the page's sliders
    (None: the slider's default; ``noise_level`` as in :func:`restore`); a value outside
    :data:`FIELDS` raises ``gr.Error`` naming the range."""
    return _degrade_and_restore(den, clean_image, sigma, salt_pepper, speckle_var, scribbles, thickness, seed,
                                strength, jpeg_quality, noise_level, progress)[:3]


def _degrade_and_restore(den: Denoiser, clean_image, sigma, salt_pepper, speckle_var, scribbles, thickness, seed,
                         strength, jpeg_quality, noise_level, progress) -> tuple[str, str, str, float | None]:
    """:func:`degrade_and_restore`'s outputs and the noise level restored with."""
    progress = progress or _no_progress
    given = {"sigma": sigma, "salt_pepper": salt_pepper, "speckle_var": speckle_var, "scribbles": scribbles,
             "thickness": thickness, "jpeg_quality": jpeg_quality}
    params = {name: checked(name, value) for name, value in given.items()}
    seed, strength = checked("seed", seed), checked("strength", strength)
    noise_level = noise_level_of(den, noise_level)
    clean, _, note, metadata = read_upload(clean_image, "a clean image (or pick an example)")
    note = f"\n\n{note.strip()}" if note else ""
    h, w = clean.shape[:2]
    if h * w > SYNTH_MAX_PIXELS:
        f = (SYNTH_MAX_PIXELS / (h * w)) ** 0.5
        size = (max(1, int(w * f)), max(1, int(h * f)))
        clean = cv2.resize(clean, size, interpolation=cv2.INTER_AREA)
        note += f"\n\nThe {w}×{h} image was scaled to {size[0]}×{size[1]} for this demo."
    colour, alpha = split_alpha(clean)
    try:
        noisy_colour, _ = apply_noise(colour, params, seed)
    except (ValueError, TypeError) as e:
        raise refuse(f"Cannot add noise: {e}") from None
    noisy = join_alpha(noisy_colour, alpha)
    r = _restore(den, noisy, strength, noise_level, progress)
    restored = r.image
    folder = _new_folder()
    p_noisy, s_noisy = _quality(clean, noisy)
    p_rest, s_rest = _quality(clean, restored)
    gain = "" if p_noisy > 150 else f" ({p_rest - p_noisy:+.2f} dB)"
    report = (f"| against the clean image | PSNR | SSIM |\n|---|---|---|\n"
              f"| noisy | {_fmt_psnr(p_noisy)} | {_fmt_ssim(s_noisy)} |\n"
              f"| restored | {_fmt_psnr(p_rest)}{gain} | {_fmt_ssim(s_rest)} |\n\n"
              f"Restored {_describe(noisy)}{_strength_note(strength)} in **{r.seconds:.2f} s**{_level_note(r)}.{note}")
    noisy_png = _save_display(noisy, folder / "noisy.png", metadata)
    return noisy_png, _save_display(restored, folder / "restored.png", metadata), report, r.level


def write_examples(folder: Path) -> tuple[list[str], list[str]]:
    """Write the clean and damaged examples (from scikit-image) as PNGs; return their paths."""
    try:
        from skimage import data
    except ImportError:
        log.warning("scikit-image is not installed: the app runs without examples")
        return [], []
    clean, noisy = [], []
    for name in CLEAN_EXAMPLES:  # rewritten at every start (atomically): a few small PNGs
        clean.append(str(write_image(folder / f"{name}.png", getattr(data, name)(), overwrite=True)))
    for name, params, seed in NOISY_EXAMPLES:
        damaged = apply_noise(getattr(data, name)(), params, seed)[0]
        noisy.append(str(write_image(folder / f"{name}_noisy.png", damaged, overwrite=True)))
    return clean, noisy


# ---------------------------------------------------------------------------- the page

INTRO = """\
# CleanVision: blind photo restoration

Removes **Gaussian noise, salt-and-pepper specks, speckle and scribbles** — alone or mixed — and
the damage real photos carry (**camera sensor noise, JPEG artefacts, noisy grey scans**), in
one pass, without being told which. A small DnCNN running on the CPU; measured PSNR on every
benchmark set in the model card: noise on grey scans and noise shared by all colours is removed
well, real camera noise and heavy JPEG blocking only a little. Upload a damaged photo, or add
noise to a clean one and see how much comes back.
"""


def _between(name: str) -> str:
    """The valid range and default of a numeric input, in words, for the tool descriptions."""
    f = FIELDS[name]
    whole = "a whole number " if f.whole else ""
    return f"{whole}from {f.lo} to {f.hi} (default {f.default}; outside is refused)"


def _noise_level_arg(takes_level: bool, photo: str, where: str) -> str:
    """The ``noise_level`` argument's description: what it does for a noise-map model, that it
    must be left out for a blind one; ``photo`` the image restored, ``where`` the output that
    gives the estimate."""
    if not takes_level:
        return ('leave it out (or "auto"): this server\'s model is blind and finds the noise level in each '
                "photo itself; a number is refused.")
    f = FIELDS["noise_level"]
    return (f"how noisy {photo} is, as σ on the 0-255 scale, from {f.lo} to {f.hi} (outside is refused); "
            f'leave it out (or "auto") to have the model estimate it ({where} gives the estimate). '
            "Lower keeps more texture, higher removes more.")


#: The MCP tools' descriptions. Gradio describes a tool by its function's docstring: the summary,
#: then under "Args:" one "name: meaning" line per argument, then "Returns:" one line per output.
#: ``{noise_level}`` is filled in by :func:`tool_docs` for the model served.
RESTORE_DOC = f"""Restore a damaged photo with CleanVision (a small DnCNN on the CPU): removes Gaussian noise, salt-and-pepper specks, speckle, scribbles and camera sensor noise, alone or mixed, without being told which; real camera noise and heavy JPEG blocking only a little.

Args:
    image: the photo to restore, as a file or URL (http(s):// or a data: URL); PNG, JPEG, HEIC (phone photos), AVIF, TIFF, WebP or BMP, 8 or 16-bit, with or without alpha; at most {MAX_FILE_MB} MB and {MAX_PIXELS // 1_000_000} megapixels.
    strength: how much of the damage found to remove, {_between("strength")}: 1 removes all of it, lower keeps more texture, 0 returns the photo unchanged.
    noise_level: {{noise_level}}

Returns:
    the before and after previews (PNG, at most {PREVIEW_MAX_SIDE} px on the long side)
    the restored photo at full resolution, lossless (a PNG with the input's bit depth and alpha; a float32 TIFF for float input)
    a status line (size, kind, seconds taken; for a model told the noise level, the level used)
"""

DEGRADE_DOC = f"""Show how much of a chosen damage CleanVision undoes: adds seeded noise to a clean photo, restores it, and measures PSNR and SSIM of the noisy and the restored image against the clean one.

Args:
    clean_image: a clean photo, as a file or URL (http(s):// or a data: URL); scaled down to {SYNTH_MAX_PIXELS // 1_000_000} megapixels.
    sigma: standard deviation of Gaussian noise on the 0-255 scale, {_between("sigma")}.
    salt_pepper: share of pixels set to black or white, {_between("salt_pepper")}.
    speckle_var: variance of multiplicative speckle noise, {_between("speckle_var")}.
    scribbles: number of random strokes drawn over the photo, {_between("scribbles")}.
    thickness: width of the strokes in pixels, {_between("thickness")}.
    seed: random seed (same seed, same noise), {_between("seed")}.
    strength: how much of the damage found to remove, {_between("strength")}.
    jpeg_quality: quality the damaged photo is saved at as JPEG, after the noise, {_between("jpeg_quality")}; 0 means not saved as JPEG.
    noise_level: {{noise_level}}

Returns:
    the noisy image (PNG)
    the restored image (PNG)
    a Markdown table of PSNR and SSIM against the clean image, the seconds taken (and the noise level used)
"""


def tool_docs(takes_level: bool) -> tuple[str, str]:
    """The two tools' descriptions for a noise-map model (``takes_level``) or a blind one."""
    return (RESTORE_DOC.format(noise_level=_noise_level_arg(takes_level, "the photo", "the status line")),
            DEGRADE_DOC.format(noise_level=_noise_level_arg(takes_level, "the damaged photo", "the report")))


def as_tool(fn: Callable, name: str, doc: str) -> Callable:
    """Name and describe a handler for MCP: Gradio names the tool after the function (``restore``,
    as the API endpoint, not the closure's name) and describes it by its docstring."""
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


def _slider(name: str, step: float, label: str, **kwargs) -> gr.Slider:
    """A slider over exactly the range :func:`checked` accepts for ``name``, at its default."""
    f = FIELDS[name]
    return gr.Slider(f.lo, f.hi, value=f.default, step=step, label=label, **kwargs)


#: The type of the ``noise_level`` parameter in the API and MCP schemas: a number, "auto" or
#: nothing (the hidden gr.Number that carries it would say "number" only, and the MCP server
#: checks each call against the schema: "auto" or null would be turned away before the handler).
NOISE_LEVEL_SCHEMA = {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]}

# In the browser, the Auto checkbox and the slider set the hidden number the endpoint reads
# (null in auto mode) and Auto greys the slider out; no request to the server.
_AUTO_JS = "(auto, level) => [{__type__: 'update', interactive: !auto}, auto ? null : level]"
_SLIDER_JS = "(auto, level) => auto ? null : level"


def _show_level(auto: bool, level: float | None):
    """After a restore in auto mode the slider shows the level the model found, so unticking
    Auto starts from it (a gr.State lives on the server: this cannot run in the browser)."""
    return round(level, 1) if auto and level is not None else gr.skip()


#: The slider update after a restore: not an API endpoint, and never queued behind a restore.
SHOW_LEVEL_EVENT = {"api_visibility": "private", "queue": False, "show_progress": "hidden"}


class NoiseLevelControl(NamedTuple):
    auto: gr.Checkbox
    slider: gr.Slider
    value: gr.Number  # hidden: what the endpoint takes (None: auto)
    used: gr.State  # the σ the last restore used, from the handler


def _noise_level_control(den: Denoiser, tab: str) -> NoiseLevelControl:
    """One tab's "Noise level" control: an Auto checkbox over a slider for a noise-map model; for a
    blind model both hidden and a note in their place. Either way the endpoint's ``noise_level``
    comes from a hidden number, so the API has one parameter for it (None/"auto" or σ)."""
    takes = den.takes_noise_level
    f = FIELDS["noise_level"]
    auto = gr.Checkbox(True, label="Auto noise level",
                       info="estimated from the photo; untick to set it yourself (camera photos: try 5-8)",
                       visible=takes, elem_id=f"{tab}-noise-auto")
    slider = gr.Slider(f.lo, f.hi, value=NOISE_LEVEL_START, step=0.1, label="Noise level (σ, 0-255)",
                       info="lower keeps more texture, higher removes more; on Auto it shows the level "
                       "found, after restoring", interactive=False, visible=takes, elem_id=f"{tab}-noise-level")
    gr.Markdown("Noise level: this model finds it in each photo itself.", visible=not takes,
                elem_id=f"{tab}-noise-note")
    value = gr.Number(None, label="Noise level", visible=False, elem_id=f"{tab}-noise-value")
    value.api_info = lambda: dict(NOISE_LEVEL_SCHEMA)  # instance override, read by the API info and MCP schema
    used = gr.State(None)
    auto.change(None, [auto, slider], [slider, value], js=_AUTO_JS)
    slider.change(None, [auto, slider], [value], js=_SLIDER_JS)
    return NoiseLevelControl(auto, slider, value, used)


def build_demo(den: Denoiser, model_label: str | None = None,
               examples_dir: str | Path | None = None) -> gr.Blocks:
    """The page, built from :func:`restore` and :func:`degrade_and_restore` bound to ``den``;
    ``model_label`` names the model in the footer.

    Both handlers are also API endpoints and MCP tools: ``/restore`` (image, strength, noise
    level) and ``/degrade_and_restore`` (clean image, sigma, salt-and-pepper, speckle, scribbles,
    thickness, seed, strength, JPEG quality, noise level); ``strength`` (default 1),
    ``jpeg_quality`` (default 0 = none) and ``noise_level`` (default None = estimated) came
    last, so older callers that leave them out still work.

    In each tab the examples come last, after the result: on a phone the columns stack, and
    the result must follow the input and its button, not a list of examples.
    """
    clean_examples, noisy_examples = write_examples(Path(examples_dir or OUT_DIR / "examples"))
    params_m = sum(p.numel() for p in den.model.parameters()) / 1e6
    limits = (f"Limits: {MAX_FILE_MB} MB per file, {MAX_PIXELS // 1_000_000} megapixels. "
              f"One image is restored at a time; others wait in a queue of {QUEUE_SIZE}.")

    # each returns its handler's outputs and, into a gr.State (not part of the API), the σ used
    def restore_event(image: dict | str | None, strength: float | None = 1.0,
                      noise_level: float | str | None = None, progress: gr.Progress = gr.Progress()):
        return _restore_photo(den, image, strength, noise_level, progress)

    def degrade_and_restore_event(clean_image: dict | str | None, sigma: float | None, salt_pepper: float | None,
                                  speckle_var: float | None, scribbles: float | None, thickness: float | None,
                                  seed: float | None, strength: float | None = 1.0, jpeg_quality: float | None = 0,
                                  noise_level: float | str | None = None, progress: gr.Progress = gr.Progress()):
        return _degrade_and_restore(den, clean_image, sigma, salt_pepper, speckle_var, scribbles, thickness, seed,
                                    strength, jpeg_quality, noise_level, progress)

    restore_doc, degrade_doc = tool_docs(den.takes_noise_level)
    as_tool(restore_event, "restore", restore_doc)
    as_tool(degrade_and_restore_event, "degrade_and_restore", degrade_doc)

    with gr.Blocks(title="CleanVision: blind photo restoration", analytics_enabled=False,
                   delete_cache=(KEEP_OUTPUTS_S, KEEP_OUTPUTS_S)) as demo:
        gr.Markdown(INTRO)
        with gr.Tab("Restore my photo", id="restore-tab"):
            with gr.Row(equal_height=False):
                with gr.Column():
                    # short labels: on a phone the component's icons sit beside them
                    photo = gr.Image(label="Noisy photo", type="filepath", image_mode=None,
                                     sources=["upload", "clipboard"], format="png", height=420,
                                     elem_id="restore-input")
                    gr.Markdown("PNG, JPEG, HEIC (phone photos), AVIF, TIFF, WebP or BMP; 8 or 16-bit, with or without alpha.",
                                elem_id="restore-formats")
                    strength = _slider("strength", 0.05, "Strength",
                                       info="1 removes all the damage it finds; lower keeps more texture; "
                                       "0 returns the photo unchanged", elem_id="restore-strength")
                    restore_level = _noise_level_control(den, "restore")
                    restore_btn = gr.Button("Restore", variant="primary", elem_id="restore-btn")
                with gr.Column():
                    compare = gr.ImageSlider(label="Before / after", type="filepath", format="png",
                                             interactive=False, buttons=["fullscreen"], max_height=420,
                                             elem_id="restore-output")
                    restored_file = gr.File(label="Restored, full size", interactive=False,
                                            elem_id="restore-download")
                    status = gr.Markdown(label="status", elem_id="restore-status")
            if noisy_examples:
                gr.Examples([[p] for p in noisy_examples], inputs=[photo], label="Damaged examples",
                            example_labels=["cat: Gaussian + scribbles", "coffee: salt-and-pepper + speckle",
                                            "astronaut: Gaussian σ=25"], elem_id="restore-examples")
        with gr.Tab("Try it with synthetic noise", id="synthetic-tab"):
            with gr.Row(equal_height=False):
                with gr.Column():
                    clean_in = gr.Image(label="Clean image", type="filepath", image_mode=None,
                                        sources=["upload", "clipboard"], format="png", height=300,
                                        elem_id="synthetic-input")
                with gr.Column():
                    sigma = _slider("sigma", 1, "Gaussian σ (0-255)")
                    salt_pepper = _slider("salt_pepper", 0.01, "Salt-and-pepper share")
                    speckle = _slider("speckle_var", 0.005, "Speckle variance")
                    scribbles = _slider("scribbles", 1, "Scribbles")
                    thickness = _slider("thickness", 1, "Scribble width (px)")
                    jpeg = _slider("jpeg_quality", 5, "JPEG quality (0 = none)",
                                   info="saved as JPEG after the noise, as a phone does", elem_id="synthetic-jpeg")
                    seed = gr.Number(value=FIELDS["seed"].default, precision=0, minimum=FIELDS["seed"].lo,
                                     label="Seed (same seed, same noise)", elem_id="synthetic-seed")
                    synth_strength = _slider("strength", 0.05, "Strength", info="of the restoration: 1 full, 0 none",
                                             elem_id="synthetic-strength")
                    synth_level = _noise_level_control(den, "synthetic")
                    synth_btn = gr.Button("Add noise and restore", variant="primary", elem_id="synthetic-btn")
            with gr.Row():
                noisy_out = gr.Image(label="Noisy", type="filepath", format="png", interactive=False,
                                     buttons=["download", "fullscreen"], elem_id="synthetic-noisy")
                restored_out = gr.Image(label="Restored", type="filepath", format="png", interactive=False,
                                        buttons=["download", "fullscreen"], elem_id="synthetic-restored")
            metrics_md = gr.Markdown(label="metrics", elem_id="synthetic-metrics")
            if clean_examples:
                gr.Examples([[p] for p in clean_examples], inputs=[clean_in], label="Clean examples (scikit-image)",
                            example_labels=list(CLEAN_EXAMPLES), elem_id="synthetic-examples")
        kind = "told the noise level (auto: estimated)" if den.takes_noise_level else "blind"
        gr.Markdown(f"Model: `{model_label or 'shipped with cleanvision'}` — DnCNN, {params_m:.2f} M parameters, "
                    f"{kind}, {den.engine} engine on {den.device.type}. {limits} "
                    "Uploads and results are deleted after an hour.")

        for image_in in (photo, clean_in):
            image_in.upload(show_upload, inputs=[image_in], outputs=[image_in], preprocess=False,
                            api_visibility="private", concurrency_limit=2, show_progress="minimal")
        restore_btn.click(restore_event, inputs=[photo, strength, restore_level.value],
                          outputs=[compare, restored_file, status, restore_level.used], api_name="restore",
                          preprocess=False, concurrency_limit=1, concurrency_id=CONCURRENCY_ID
                          ).success(_show_level, [restore_level.auto, restore_level.used], [restore_level.slider],
                                    **SHOW_LEVEL_EVENT)
        synth_btn.click(degrade_and_restore_event,
                        inputs=[clean_in, sigma, salt_pepper, speckle, scribbles, thickness, seed, synth_strength, jpeg,
                                synth_level.value],
                        outputs=[noisy_out, restored_out, metrics_md, synth_level.used], api_name="degrade_and_restore",
                        preprocess=False, concurrency_limit=1, concurrency_id=CONCURRENCY_ID
                        ).success(_show_level, [synth_level.auto, synth_level.used], [synth_level.slider],
                                  **SHOW_LEVEL_EVENT)
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return demo


def _mcp_outputs_apart() -> None:
    """Give each output of a tool call its own MCP content, the restored photo an image.

    Gradio 6.31's MCP server, when the client asks for no progress updates, wraps a queued
    tool's outputs in one list and sends its repr as a single text: the agent gets no image.
    Its progress path keeps them apart; this makes the other path do the same (the client
    returns a tuple exactly when an endpoint has several outputs).
    """
    from anyio.to_thread import run_sync
    from gradio.mcp import GradioMCPServer

    async def each_output(self, job) -> list:
        result = await run_sync(job.result)
        return list(result) if isinstance(result, tuple) else [result]

    if hasattr(GradioMCPServer, "_execute_tool_without_progress"):  # else Gradio changed: tests/test_mcp.py tells
        GradioMCPServer._execute_tool_without_progress = each_output


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, mcp: bool = True, **kwargs):
    """Serve the page with the upload limit and, with ``mcp``, Gradio's MCP server (needs
    ``gradio[mcp]``) at ``/gradio_api/mcp/`` (streamable HTTP; SSE at ``/gradio_api/mcp/sse``),
    its tools the two endpoints; extra arguments go to ``gr.Blocks.launch``."""
    if mcp:
        _mcp_outputs_apart()
    return demo.launch(server_name=host, server_port=port, max_file_size=MAX_FILE_BYTES,
                       footer_links=["api"], mcp_server=mcp, **kwargs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="CleanVision web app (Gradio).")
    parser.add_argument("--model", default=None,
                        help=f"model folder or Hub repo id (default: ${MODEL_ENV}, else the shipped model; "
                             f"on a Space {HUB_REPO})")
    parser.add_argument("--revision", default=None, help=f"Hub revision to pin (default: ${REVISION_ENV})")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                        help="port (default: $GRADIO_SERVER_PORT or 7860)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        den = load_denoiser(args.model, args.revision)
    except CleanVisionError as e:
        sys.exit(f"cleanvision app: {e}")
    label = model_name(args.model)
    revision = args.revision or os.environ.get(REVISION_ENV)
    if label and revision:
        label = f"{label}@{revision}"
    launch(build_demo(den, label), args.host, args.port)


if __name__ == "__main__":
    main()
