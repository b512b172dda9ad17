"""The exception types CleanVision raises for problems a user can fix.

Callers (CLI, app) catch these and show the message; anything else is a bug. Messages speak
Python (``overwrite=True``), as a caller of the library sees them; the CLI words its own
(``--overwrite``) where an exception needs one, from the fields kept on it.
"""
from __future__ import annotations

import os
from pathlib import Path


class CleanVisionError(Exception):
    """Base class: the message is written for the user and names the offending input."""


class ImageReadError(CleanVisionError, ValueError):
    """An image file is missing, empty, truncated, not an image, or too large to decode."""


class ImageWriteError(CleanVisionError, OSError):
    """An output image could not be written (exists, unsupported bit depth, disk error)."""


class OutputExistsError(ImageWriteError, FileExistsError):
    """An output file is already there and was not to be replaced (no ``overwrite=True``).

    ``path`` is the file, so a caller can say in its own words how to replace it.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        super().__init__(f"{self.path}: already exists (pass overwrite=True to replace it)")


class WeightsError(CleanVisionError, ValueError):
    """A model folder or weights file is missing, not safetensors, or does not match its config."""


class MissingDependencyError(CleanVisionError, ImportError):
    """An optional package a feature needs is not installed; the message says how to install it."""


class Int8Unavailable(CleanVisionError):
    """The int8 engine cannot run this model: no int8 graph beside its weights, a graph made
    from other weights (stale), or no ONNX Runtime. ``engine="auto"`` falls back to a float
    engine instead; the message says which it was and how to fix it."""


class NotKept(UserWarning):
    """Part of an input that an output does not carry: the frames after the first of an
    animated GIF or a multi-page TIFF (only the first is read), or a colour profile or EXIF
    record that the output cannot hold. Warned, not raised, as the output is still a good image, but the user
    must be told what it lacks: the CLI lists these files under its summary, the app says it in
    its status line."""
