"""What each output of ``cleanvision denoise`` / ``degrade`` was made with, so that a re-run can
tell "already done" from "done with other settings" instead of skipping both alike.

One JSON file per output folder, ``OUTDIR/.cleanvision.json``, keyed by each output's path
relative to that folder (``sub/photo.png``)::

    {"photo.png": {"command": "denoise", "source": "/abs/in/photo.jpg",
                   "settings": {"model": "<weights sha256>", "engine": "bf16", "strength": 0.5},
                   "model_name": "shipped"}}

A sidecar rather than metadata inside each image: PNG and TIFF (and float TIFF) alike, one read
for a whole folder, and it also names which files in the folder are outputs (never to be taken
as inputs again). Written atomically under an exclusive lock on the folder, so processes that
share an output folder (``accelerate launch``) merge their entries and lose none.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

RECORD_NAME = ".cleanvision.json"
#: An output that exists but has no entry: made by something else, or before records were kept.
UNKNOWN = "no record of the settings it was made with"


class OutputRecord:
    """The entries of one output folder: read once, added to as outputs are written, saved once."""

    def __init__(self, outdir: str | os.PathLike):
        self.outdir = Path(outdir)
        self.path = self.outdir / RECORD_NAME
        self.entries = _read(self.path)
        self._new: dict[str, dict] = {}

    def key(self, dest: Path) -> str:
        return dest.relative_to(self.outdir).as_posix()

    def get(self, dest: Path) -> dict | None:
        return self._new.get(self.key(dest)) or self.entries.get(self.key(dest))

    def add(self, dest: Path, command: str, source: Path, settings: dict[str, Any], **info: Any) -> None:
        self._new[self.key(dest)] = {"command": command, "source": str(Path(source).resolve()),
                                     "settings": settings, **info}

    def outputs(self) -> set[Path]:
        """Every file the record names, resolved: what earlier runs wrote into this folder."""
        return {(self.outdir / k).resolve() for k in self.entries}

    def save(self) -> None:
        """Merge the new entries into the file as it is now (another process may have added some)."""
        if not self._new:
            return
        from .image_io import write_file

        self.outdir.mkdir(parents=True, exist_ok=True)
        with _locked(self.outdir):
            entries = {**_read(self.path), **self._new}
            write_file(self.path, (json.dumps(entries, indent=1, sort_keys=True) + "\n").encode(), overwrite=True)
        self.entries.update(self._new)
        self._new.clear()


def model_identity(model: str | None, revision: str | None = None) -> str:
    """What outputs are recorded as made with: the sha256 of the model's weights where they are a
    local file (the shipped ones, a folder; so two paths to one model are one model), else its
    Hub id and revision. ``None`` is the default model ($CLEANVISION_MODEL or the shipped one)."""
    from .inference import MODEL_ENV
    from .speed import weights_sha256

    return weights_sha256(model) or f"{model or os.environ.get(MODEL_ENV)}@{revision or 'main'}"


def differences(old: dict | None, settings: dict[str, Any], model_name: str | None = None) -> list[str]:
    """How the settings asked for now differ from those an output was made with, as
    ``"strength 1 -> 0.5"``; empty when they are the same. ``old`` is the output's entry."""
    if old is None:
        return [UNKNOWN]
    was = old.get("settings", {})
    out = []
    for key in [*settings, *(k for k in was if k not in settings)]:
        a, b = was.get(key), settings.get(key)
        if a != b:
            if key == "model":
                a, b = _model(a, old.get("model_name")), _model(b, model_name)
            out.append(f"{key.replace('_', ' ')} {_show(a)} -> {_show(b)}")
    return out


def _model(identity: Any, name: str | None) -> str:
    """A model as a user knows it: its name, and the start of its weights' sha256 when known."""
    if isinstance(identity, str) and len(identity) == 64 and name:
        return f"{name} (weights sha256 {identity[:12]})"
    return str(name or identity)


def _show(value: Any) -> str:
    if value is None:
        return "(not recorded)"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _read(path: Path) -> dict[str, dict]:
    """The entries in ``path``; none when it is missing or unreadable (then every existing output
    counts as one without a record, and is kept)."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` itself (no lock file left behind); a no-op where the OS has no flock."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
