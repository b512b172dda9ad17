"""ONNX export of a DnCNN, and an ONNX Runtime session for the ``onnxruntime`` engine.

    cleanvision export --onnx dncnn.onnx              # the shipped model
    from cleanvision.export import export_onnx
    export_onnx(model, "dncnn.onnx")

The exported network is the one the fast engines run: BatchNorm folded into the
convolutions (:meth:`DnCNN.fuse`), pixel-unshuffle, body, pixel-shuffle, and the residual
``image − predicted noise``. One float32 input ``image`` (N×C×H×W, values in [0, 1], RGB order
for colour models) and one output ``restored`` of the same shape, *not* clipped: clip it to
[0, 1] (``Denoiser`` does so after its optional ``strength`` blend). Batch, height and width
are dynamic, and any H and W from 1 up work: the graph itself pads bottom/right by edge
replication to a multiple of the pixel-unshuffle factor and crops the result back, exactly as
:meth:`DnCNN.predict_noise` does. Tiles of a large image must overlap by the receptive radius
for the tiled result to equal the one-pass one. Both numbers, the model's config, the opset and
the cleanvision version are in the file's ``metadata_props``.

The graph comes from torch's TorchScript-based exporter (``torch.onnx.export(dynamo=False)``):
with torch pinned to 2.13 it handles this plain conv net with dynamic axes in a quarter of a
second and needs no package beyond ``onnx``, where the ``torch.export``
route (``dynamo=True``) would add ``onnxscript`` and ``onnx-ir`` and take seconds. torch marks
that exporter deprecated; moving to a torch that drops it means ``dynamo=True`` with
``dynamic_shapes`` and ``onnxscript``.
"""
from __future__ import annotations

import copy
import io
import json
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import MissingDependencyError, OutputExistsError
from .hardware import ort_available  # noqa: F401 - re-exported: where the engine's needs are checked
from .image_io import write_file
from .model import DnCNN, remove_phase_offset
from .options import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET  # noqa: F401 - re-exported

INPUT, NOISE_MAP, OUTPUT = "image", "noise_map", "restored"
INSTALL_HINT = "pip install 'cleanvision[onnx]' (or: pip install onnx onnxruntime)"


class _Restore(nn.Module):
    """``x − noise`` for any H and W: :meth:`DnCNN.predict_noise` written so that the tracer
    records the padding from the input's shape. DnCNN's own ``if ph or pw`` branch would be
    frozen at the example input's shape, so here the padding is always applied, and is zero
    where H and W are already multiples of the unshuffle factor.

    A noise-map model's graph takes the map as a second input (its estimator is not in the
    graph). ``whole_image``: the phase correction of a ``phase_correction`` model is part of the
    graph, as one pass over a whole image needs; tiles that ``Denoiser`` assembles leave it to
    the assembled image."""

    def __init__(self, model: DnCNN, whole_image: bool = True):
        super().__init__()
        self.body, self.scale, self.noise_map = model.body, model.scale, model.noise_map
        self.correct = model.phase_correction and whole_image

    def forward(self, x: torch.Tensor, noise_map: torch.Tensor | None = None) -> torch.Tensor:
        s = self.scale
        h, w = x.shape[-2], x.shape[-1]  # traced as Shape ops: dynamic in the graph
        pad = (0, (s - w % s) % s, 0, (s - h % s) % s)
        y = F.pixel_unshuffle(F.pad(x, pad, mode="replicate"), s) if s > 1 else x
        if self.noise_map:
            m = F.pad(noise_map, pad, mode="replicate") if s > 1 else noise_map
            y = torch.cat([y, F.avg_pool2d(m, s) if s > 1 else m], dim=1)
        noise = F.pixel_shuffle(self.body(y), s) if s > 1 else self.body(y)
        if self.correct:
            noise = remove_phase_offset(noise, s)
        return x - noise[..., :h, :w]


def onnx_bytes(model: DnCNN, opset: int = DEFAULT_OPSET, whole_image: bool = True) -> bytes:
    """The folded network as an ONNX model in memory (no metadata; ``model`` is left as it was);
    ``whole_image=False`` for the tiles ``Denoiser`` runs (see :class:`_Restore`)."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset must be from {MIN_OPSET} to {MAX_OPSET}, got {opset}")
    try:
        import onnx  # noqa: F401 - torch's exporter needs it to serialise
    except ImportError:
        raise MissingDependencyError(f"ONNX export needs the onnx package: {INSTALL_HINT}") from None
    plain = copy.deepcopy(model).cpu().float().to(memory_format=torch.contiguous_format)  # Denoiser's is channels-last
    net = _Restore(plain.eval().fuse(), whole_image).eval()
    s = model.scale
    example = (torch.rand(1, model.channels, 8 * s + 1, 6 * s + 1),)  # unequal H, W, both padded: nothing frozen
    names = [INPUT]
    if model.noise_map:
        example += (torch.rand(1, model.noise_map, 8 * s + 1, 6 * s + 1) * 0.1,)
        names.append(NOISE_MAP)
    axes = {0: "batch", 2: "height", 3: "width"}
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the exporter's own notice that it is deprecated (see above)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        torch.onnx.export(net, example, buf, dynamo=False, opset_version=opset,
                          input_names=names, output_names=[OUTPUT],
                          dynamic_axes={**{n: axes for n in names}, OUTPUT: axes})
    return buf.getvalue()


def metadata(model: DnCNN, opset: int, source: str | None = None) -> dict[str, str]:
    """What a user of the file needs to feed it correctly (stored as ``metadata_props``)."""
    from . import __version__

    config = {"channels": model.channels, "depth": model.depth, "width": model.width,
              "pixel_unshuffle": model.scale, "batch_norm": False, "noise_map": model.noise_map,
              "phase_correction": model.phase_correction}
    meta = {
        "opset": str(opset),
        "cleanvision_version": __version__,
        "config": json.dumps(config, sort_keys=True),
        "pixel_unshuffle": str(model.scale),
        "receptive_radius": str(model.receptive_radius),
        "input": f"{INPUT}: float32 N×{model.channels}×H×W in [0, 1]"
                 + (", RGB" if model.channels == 3 else "")
                 + f"; any H and W (padded inside to multiples of {model.scale} by edge replication, "
                 "bottom/right, and cropped back)",
        "output": f"{OUTPUT}: {INPUT} minus the predicted noise, same shape, not clipped (clip to [0, 1])",
        **({"noise_map": f"{NOISE_MAP}: float32 N×{model.noise_map}×H×W, the noise level at each pixel "
                         "(σ on the 0-255 scale divided by 255); cleanvision's Denoiser estimates it "
                         "when not given"} if model.noise_map else {}),
        "tiling": f"tiles must overlap by {model.receptive_radius} px to equal the one-pass result",
    }
    if source:
        meta["source"] = source
    return meta


def export_onnx(model: DnCNN, path: str | os.PathLike, opset: int = DEFAULT_OPSET, overwrite: bool = False,
                source: str | None = None) -> dict[str, str]:
    """Write ``model`` (BatchNorm folded) to ``path`` as ONNX, atomically; returns the metadata.

    Refuses to replace an existing file unless ``overwrite`` (:class:`OutputExistsError`).
    ``source`` (e.g. the model folder or Hub id) is recorded in the metadata.
    """
    p = Path(path)
    if p.exists() and not overwrite:
        raise OutputExistsError(p)
    data = onnx_bytes(model, opset)  # MissingDependencyError without the onnx package
    import onnx

    proto = onnx.load_from_string(data)
    meta = metadata(model, opset, source)
    onnx.helper.set_model_props(proto, meta)
    onnx.checker.check_model(proto)
    write_file(p, proto.SerializeToString(), overwrite)  # atomic; OutputExistsError if it appeared meanwhile
    return meta


def ort_session(model: DnCNN | None, threads: int | None = None, opset: int = DEFAULT_OPSET, graph: bytes | None = None):
    """An ONNX Runtime CPU session of the folded ``model``, exported in memory (about a third of
    a second; nothing is cached on disk), or of ``graph`` when given (e.g. a quantised form of
    it). ``threads`` defaults to torch's thread count."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependencyError(f"the onnxruntime engine needs onnxruntime and onnx: {INSTALL_HINT}") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # no busy-waiting between runs: ONNX Runtime's spinning threads took the cores from torch's
    # noise-level estimator between the two (int8 auto mode, 512×512: 0.236 s with, 0.184 without)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(graph or onnx_bytes(model, opset, whole_image=False), sess_options=opts,
                                providers=["CPUExecutionProvider"])
