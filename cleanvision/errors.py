"""The exception types CleanVision raises for problems a user can fix.

Callers (CLI, app) catch these and show the message; anything else is a bug.
"""
from __future__ import annotations


class CleanVisionError(Exception):
    """Base class: the message is written for the user and names the offending input."""


class ImageReadError(CleanVisionError, ValueError):
    """An image file is missing, empty, truncated, not an image, or too large to decode."""


class ImageWriteError(CleanVisionError, OSError):
    """An output image could not be written (exists, unsupported bit depth, disk error)."""


class WeightsError(CleanVisionError, ValueError):
    """A model folder or weights file is missing, not safetensors, or does not match its config."""


class MissingDependencyError(CleanVisionError, ImportError):
    """An optional package a feature needs is not installed; the message says how to install it."""
