"""ONNX export of a DnCNN, and an ONNX Runtime session for the ``onnxruntime`` engine.

    cleanvision export --onnx dncnn.onnx              # the shipped model
    from cleanvision.export import export_onnx
    export_onnx(model, "dncnn.onnx")

The exported network is the one the fast engines run: BatchNorm folded into the
convolutions (:meth:`DnCNN.fuse`), pixel-unshuffle, body, pixel-shuffle, and the residual
``image − predicted noise``. One float32 input ``image`` (N×C×H×W, values in [0, 1], RGB order
for colour models) and one output ``restored`` of the same shape, *not* clipped: clip it to
[0, 1] (``Denoiser`` does so after its optional ``strength`` blend). Batch, height and width
are dynamic, but H and W must be multiples of the pixel-unshuffle factor: pad bottom/right by
edge replication and crop the result, as ``Denoiser`` does. Tiles of a large image must overlap
by the receptive radius for the tiled result to equal the one-pass one. Both numbers, the
model's config, the opset and the cleanvision version are in the file's ``metadata_props``.

The graph comes from torch's TorchScript-based exporter (``torch.onnx.export(dynamo=False)``):
with torch pinned to 2.13 it handles this plain conv net with dynamic axes in a quarter of a
second and needs no package beyond ``onnx``, where the ``torch.export``
route (``dynamo=True``) would add ``onnxscript`` and ``onnx-ir`` and take seconds. torch marks
that exporter deprecated; moving to a torch that drops it means ``dynamo=True`` with
``dynamic_shapes`` (H and W as multiples of the unshuffle factor) and ``onnxscript``.
"""
from __future__ import annotations

import copy
import io
import json
import os
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import CleanVisionError, MissingDependencyError
from .model import DnCNN

#: Widely supported (ONNX Runtime ≥ 1.12, OpenVINO, TensorRT); every op here exists since opset 11.
DEFAULT_OPSET = 17
#: The range torch's TorchScript-based exporter writes this network for.
MIN_OPSET, MAX_OPSET = 11, 20
INPUT, OUTPUT = "image", "restored"
INSTALL_HINT = "pip install 'cleanvision[onnx]' (or: pip install onnx onnxruntime)"


def ort_available() -> bool:
    """Whether the ``onnxruntime`` engine can be built here (onnx and onnxruntime installed)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))


class _Restore(nn.Module):
    """``x − noise`` for H and W multiples of the unshuffle factor: DnCNN.forward without the
    padding branch, which would be frozen into the graph at the example input's shape."""

    def __init__(self, model: DnCNN):
        super().__init__()
        self.body, self.scale = model.body, model.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1:
            return x - self.body(x)
        y = F.pixel_unshuffle(x, self.scale)
        return x - F.pixel_shuffle(self.body(y), self.scale)


def onnx_bytes(model: DnCNN, opset: int = DEFAULT_OPSET) -> bytes:
    """The folded network as an ONNX model in memory (no metadata; ``model`` is left as it was)."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset must be from {MIN_OPSET} to {MAX_OPSET}, got {opset}")
    try:
        import onnx  # noqa: F401 - torch's exporter needs it to serialise
    except ImportError:
        raise MissingDependencyError(f"ONNX export needs the onnx package: {INSTALL_HINT}") from None
    plain = copy.deepcopy(model).cpu().float().to(memory_format=torch.contiguous_format)  # Denoiser's is channels-last
    net = _Restore(plain.eval().fuse()).eval()
    s = model.scale
    example = torch.rand(1, model.channels, 8 * s, 6 * s)  # unequal H, W: neither gets frozen
    axes = {0: "batch", 2: "height", 3: "width"}
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the exporter's own notice that it is deprecated (see above)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        torch.onnx.export(net, (example,), buf, dynamo=False, opset_version=opset,
                          input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: axes, OUTPUT: axes})
    return buf.getvalue()


def metadata(model: DnCNN, opset: int, source: str | None = None) -> dict[str, str]:
    """What a user of the file needs to feed it correctly (stored as ``metadata_props``)."""
    from . import __version__

    config = {"channels": model.channels, "depth": model.depth, "width": model.width,
              "pixel_unshuffle": model.scale, "batch_norm": False}
    meta = {
        "opset": str(opset),
        "cleanvision_version": __version__,
        "config": json.dumps(config, sort_keys=True),
        "pixel_unshuffle": str(model.scale),
        "receptive_radius": str(model.receptive_radius),
        "input": f"{INPUT}: float32 N×{model.channels}×H×W in [0, 1]"
                 + (", RGB" if model.channels == 3 else "")
                 + f"; H and W multiples of {model.scale} (pad bottom/right by edge replication, then crop)",
        "output": f"{OUTPUT}: {INPUT} minus the predicted noise, same shape, not clipped (clip to [0, 1])",
        "tiling": f"tiles must overlap by {model.receptive_radius} px to equal the one-pass result",
    }
    if source:
        meta["source"] = source
    return meta


def export_onnx(model: DnCNN, path: str | os.PathLike, opset: int = DEFAULT_OPSET, overwrite: bool = False,
                source: str | None = None) -> dict[str, str]:
    """Write ``model`` (BatchNorm folded) to ``path`` as ONNX, atomically; returns the metadata.

    Refuses to replace an existing file unless ``overwrite``. ``source`` (e.g. the model folder
    or Hub id) is recorded in the metadata.
    """
    p = Path(path)
    if p.exists() and not overwrite:
        raise CleanVisionError(f"{p}: already exists (pass overwrite=True / --overwrite to replace it)")
    data = onnx_bytes(model, opset)  # MissingDependencyError without the onnx package
    import onnx

    proto = onnx.load_from_string(data)
    meta = metadata(model, opset, source)
    onnx.helper.set_model_props(proto, meta)
    onnx.checker.check_model(proto)
    _write_atomically(p, proto.SerializeToString(), overwrite)
    return meta


def _write_atomically(p: Path, data: bytes, overwrite: bool) -> None:
    """A temporary file beside ``p``, then renamed (linked when not overwriting, so a file that
    appeared meanwhile is never clobbered); nothing half-written is left, even on Ctrl-C."""
    from .image_io import _link_new, file_mode

    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        (os.replace if overwrite else _link_new)(tmp, p)
    except FileExistsError:
        raise CleanVisionError(f"{p}: already exists (pass --overwrite to replace it)") from None
    except OSError as e:
        raise CleanVisionError(f"{p}: cannot write ({e.strerror or e})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def ort_session(model: DnCNN | None, threads: int | None = None, opset: int = DEFAULT_OPSET, graph: bytes | None = None):
    """An ONNX Runtime CPU session of the folded ``model``, exported in memory (about a third of
    a second; nothing is cached on disk), or of ``graph`` when given (e.g. a quantised form of
    it). ``threads`` defaults to torch's thread count."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependencyError(f'engine="onnxruntime" needs onnxruntime and onnx: {INSTALL_HINT}') from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(graph or onnx_bytes(model, opset), sess_options=opts,
                                providers=["CPUExecutionProvider"])
