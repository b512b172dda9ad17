"""Quantisation-aware training (QAT): fake-quantised convolutions whose arithmetic is ONNX
Runtime's QDQ int8, and the QDQ graph they export to.

Post-training int8 lost 1-1.7 dB (docs/speed.md, "int8, post-training"): every layer's rounding
costs a little and no calibration removes it. QAT fine-tunes the float network with that
rounding in its forward pass, so it learns weights that survive it. The rounding here is the one
ONNX Runtime's int8 convolution (QLinearConv, fused from a QDQ graph) computes, so what training
sees is what the engine runs:

- BatchNorm folded first (:meth:`DnCNN.fuse`): the engine has none, and the fold's scale is
  learned into the int8 weights instead of being applied after rounding;
- weights: int8, symmetric, one scale per output channel, ``max|w| / weight_max``
  (``weight_max`` 127; 64 keeps every u8×s8 pair sum within int16, the saturation of AVX2's
  ``vpmaddubsw`` on CPUs without VNNI);
- activations: uint8, one scale per tensor, zero point 0 (they follow a ReLU, which the
  quantiser's clamp then is); scales initialised by a least-squares search on calibration
  batches and learned with LSQ (Esser et al. 2020), after each activation's channels are rescaled
  to span more nearly the one range (:func:`equalise_activations`). The first convolution's input is the image
  (and noise map) at scale 1/255: an 8-bit photo is exact;
- biases: int32 at scale input × weight scale, as QLinearConv adds them;
- the last convolution's output (the predicted noise) is uint8 with zero point 128 when the
  last convolution is quantised, else that convolution runs in float on the quantised input
  (``float_last``; about 1 % of the work).

Rounding is round-half-to-even, as ONNX's QuantizeLinear, with a straight-through gradient
(torch's fused fake-quantisation kernels); ONNX Runtime's int8 graph then gives the fake-quantised
network's output to within rounding ties (tests/test_qat.py: on average 1/100 of a grey level).
The noise-level estimator of a noise-map model is not in the graph (the engine runs it in
float) and is frozen here.

Why these choices, measured on the shipped weights (docs/speed.md, "int8, quantisation-aware"):
own modules rather than torchao's PT2E flow or NNCF, because they reproduce ONNX Runtime's
arithmetic by construction, add no package, and trained faster; the last convolution in float
because rounding the predicted noise alone (the one rounding QAT cannot learn around) cost
0.08 dB on PolyU.

    qat = prepare_qat(model, QuantSpec(), calibration_batches)   # a DnCNN with QuantConv2d layers
    ... train qat like the float model ...
    graph = int8_onnx_bytes(qat)                                   # QDQ ONNX for ONNX Runtime
"""
from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .model import DnCNN
from .options import DEFAULT_OPSET

#: uint8 activations: [0, 255]; the predicted noise (signed) is stored around this zero point.
ACT_MAX, NOISE_ZERO_POINT = 255, 128
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1


@dataclass(frozen=True)
class QuantSpec:
    """How a model is quantised; recorded in the int8 graph's metadata."""

    #: largest int8 weight magnitude: 127 (full int8) or 64 (7-bit: no u8×s8 saturation on AVX2)
    weight_max: int = 127
    #: the last convolution in float (its output, the predicted noise, is not rounded to 8 bits)
    float_last: bool = True
    #: learn each output channel's weight scale (LSQ) instead of ``max|w| / weight_max``, so a
    #: channel with a few large weights can clip them rather than coarsen all the others
    learn_weight_scale: bool = False
    #: learn the activation ranges (LSQ); False keeps them at the calibration's least-squares
    #: values: learned ranges shrink toward the common case and clip impulses' activations
    learn_activation_scale: bool = True
    #: strength (0 to 1) of the activation equalisation done before calibration
    #: (:func:`equalise_activations`); 0 = none
    equalise: float = 0.0

    def __post_init__(self):
        if not 1 <= self.weight_max <= 127:
            raise ValueError(f"weight_max must be from 1 to 127, got {self.weight_max}")
        if not 0.0 <= self.equalise <= 1.0:
            raise ValueError(f"equalise must be from 0 to 1, got {self.equalise}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


# --------------------------------------------------------------------------- fake quantisation

def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round half to even forward, identity backward (the straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


def fake_quant(x: torch.Tensor, scale: torch.Tensor, zero_point: int, qmin: int, qmax: int) -> torch.Tensor:
    """QuantizeLinear then DequantizeLinear: ``(clamp(round(x / s) + z, qmin, qmax) - z) · s``,
    straight-through to ``x`` (and, for a learned ``scale``, LSQ's gradient to it). Written out
    for the small tensors (bias); activations and weights use torch's fused kernels below."""
    return (torch.clamp(round_ste(x / scale) + zero_point, qmin, qmax) - zero_point) * scale


def weight_scale(weight: torch.Tensor, weight_max: int) -> torch.Tensor:
    """Per output channel: ``max|w| / weight_max`` (a channel of zeros gets a harmless 1)."""
    amax = weight.detach().abs().amax(dim=tuple(range(1, weight.dim())))
    return torch.where(amax > 0, amax / weight_max, torch.ones_like(amax))


def quantise_weight(weight: torch.Tensor, weight_max: int,
                    scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 values as int8, per-channel scales): exactly what :class:`QuantConv2d` rounds to
    (``scale``: a learned one, else ``max|w| / weight_max``)."""
    s = weight_scale(weight, weight_max) if scale is None else scale.detach()
    q = torch.fake_quantize_per_channel_affine(weight.detach(), s, torch.zeros_like(s, dtype=torch.int32), 0,
                                               -weight_max, weight_max)
    return torch.round(q / s.view(-1, *[1] * (weight.dim() - 1))).to(torch.int8), s


class ActQuant(nn.Module):
    """Per-tensor uint8 fake quantisation with zero point ``zero_point``; the scale is learned
    (LSQ, with its 1/sqrt(numel · 255) gradient scaling) unless ``learn`` is False (the image
    input: exactly 1/255). torch's fused fake-quantisation kernels, a third of the time of the
    same arithmetic written out in elementwise ops."""

    def __init__(self, scale: float, zero_point: int = 0, learn: bool = True):
        super().__init__()
        self.zero_point, self.learn = zero_point, learn
        if learn:
            self.scale = nn.Parameter(torch.tensor(float(scale)))
        else:
            self.register_buffer("scale", torch.tensor(float(scale)))

    def effective_scale(self) -> torch.Tensor:
        return self.scale.abs().clamp_min(1e-10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.effective_scale()
        if self.learn and self.training and torch.is_grad_enabled():
            zp = torch.tensor([float(self.zero_point)], device=x.device)
            return torch._fake_quantize_learnable_per_tensor_affine(
                x, s.reshape(1), zp, 0, ACT_MAX, 1.0 / (x[0].numel() * ACT_MAX) ** 0.5)
        return torch.fake_quantize_per_tensor_affine(x, s.detach(), torch.tensor(self.zero_point, dtype=torch.int32,
                                                                                  device=x.device), 0, ACT_MAX)


class QuantConv2d(nn.Module):
    """A convolution as ONNX Runtime's QDQ int8 runs it: uint8 input, int8 per-channel
    symmetric weights, int32 bias; ``output`` (the last convolution) rounds its result to
    uint8 around :data:`NOISE_ZERO_POINT`. ``float_weights``: weights and bias stay float (a
    float convolution fed the quantised input)."""

    def __init__(self, conv: nn.Conv2d, input_quant: ActQuant, weight_max: int,
                 output_quant: ActQuant | None = None, float_weights: bool = False,
                 learn_weight_scale: bool = False):
        super().__init__()
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups
        self.weight = nn.Parameter(conv.weight.detach().clone())
        self.bias = nn.Parameter(conv.bias.detach().clone() if conv.bias is not None
                                 else torch.zeros(conv.out_channels))
        self.input_quant, self.output_quant = input_quant, output_quant
        self.weight_max, self.float_weights = weight_max, float_weights
        self.learned_weight_scale = (nn.Parameter(weight_scale(self.weight, weight_max))
                                     if learn_weight_scale and not float_weights else None)

    def weight_scales(self) -> torch.Tensor:
        """Per output channel: the learned scale, else ``max|w| / weight_max`` (no gradient)."""
        if self.learned_weight_scale is not None:
            return self.learned_weight_scale.abs().clamp_min(1e-12)
        return weight_scale(self.weight, self.weight_max)

    def quantised_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The weight and bias the int8 engine multiplies by (dequantised), with straight-through
        gradients to the float ones."""
        if self.float_weights:
            return self.weight, self.bias
        s = self.weight_scales()
        if self.learned_weight_scale is not None and self.training and torch.is_grad_enabled():
            per_channel = self.weight[0].numel()
            w = torch._fake_quantize_learnable_per_channel_affine(
                self.weight, s, torch.zeros_like(s), 0, -self.weight_max, self.weight_max,
                1.0 / (per_channel * self.weight_max) ** 0.5)
        else:
            w = torch.fake_quantize_per_channel_affine(self.weight, s.detach(), torch.zeros_like(s, dtype=torch.int32),
                                                       0, -self.weight_max, self.weight_max)
        sb = (s * self.input_quant.effective_scale()).detach()
        b = fake_quant(self.bias, sb, 0, INT32_MIN, INT32_MAX)
        return w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.quantised_params()
        y = F.conv2d(self.input_quant(x), w, b, self.stride, self.padding, self.dilation, self.groups)
        return self.output_quant(y) if self.output_quant is not None else y

    def float_conv(self) -> nn.Conv2d:
        """A plain convolution holding this one's (float, trained) weights."""
        c = nn.Conv2d(self.weight.shape[1] * self.groups, self.weight.shape[0], self.weight.shape[2:],
                      self.stride, self.padding, self.dilation, self.groups)
        with torch.no_grad():
            c.weight.copy_(self.weight)
            c.bias.copy_(self.bias)
        return c


# --------------------------------------------------------------------------- preparing a model

def quant_convs(model: DnCNN) -> list[QuantConv2d]:
    """The body's quantised convolutions, first to last."""
    return [m for m in model.body if isinstance(m, QuantConv2d)]


def is_qat(model: DnCNN) -> bool:
    return bool(quant_convs(model))


def _body_convs(model: DnCNN) -> list[nn.Conv2d]:
    return [m for m in model.body if isinstance(m, nn.Conv2d)]


@torch.no_grad()
def _watch_convs(model: DnCNN, batches: Iterable, watch) -> None:
    """Run ``batches`` of ``(noisy, noise_map or None)`` through the model in eval mode, calling
    ``watch(i, input, output)`` at each body convolution ``i``."""
    hooks = [c.register_forward_hook(lambda mod, inp, o, i=i: watch(i, inp[0], o))
             for i, c in enumerate(_body_convs(model))]
    was_training, seen = model.training, 0
    model.eval()
    try:
        for noisy, noise_map in batches:
            model.network_noise(noisy, noise_map)
            seen += 1
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if not seen:
        raise ValueError("no calibration batches")


def _calibrate(model: DnCNN, batches: Iterable) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Samples of each body convolution's input and of the last one's output over ``batches``
    of ``(noisy, noise_map or None)``."""
    last = len(_body_convs(model)) - 1
    seen: list[list[torch.Tensor]] = [[] for _ in range(last + 1)]
    out: list[torch.Tensor] = []
    gen = torch.Generator().manual_seed(0)

    def sample(t: torch.Tensor, n: int = 200_000) -> torch.Tensor:
        t = t.detach().float().flatten()
        return t if t.numel() <= n else t[torch.randint(t.numel(), (n,), generator=gen)]

    def watch(i: int, x: torch.Tensor, y: torch.Tensor) -> None:
        seen[i].append(sample(x))
        if i == last:
            out.append(sample(y))

    _watch_convs(model, batches, watch)
    return [torch.cat(s) for s in seen], torch.cat(out)


@torch.no_grad()
def equalise_activations(model: DnCNN, batches: Iterable, strength: float = 1.0,
                         max_gain: float = 8.0) -> list[torch.Tensor]:
    """Rescale a folded model's channels so each body convolution's input channels span more
    nearly the same range, without changing what the float model computes; returns the gains.

    One uint8 scale serves all channels of an activation (ONNX Runtime's int8 convolution takes
    no per-channel input scale), so a channel whose values stay far below the tensor's largest
    gets only a few of the 256 steps. A ReLU passes positive factors through, so output channel
    ``c`` of one convolution (weights and bias) can be multiplied by ``g_c`` and input channel
    ``c`` of the next divided by it (Nagel et al. 2019, "Data-free quantization"; SmoothQuant's
    migration strength is ``strength``): ``g_c = (max over channels / max of c) ** strength``,
    at most ``max_gain``, read on ``batches`` of ``(noisy, noise_map or None)``. The weights
    it divides get coarser against their channel's int8 step; QAT learns around that."""
    body, convs = list(model.body), _body_convs(model)
    between = [type(m) for m in body if not isinstance(m, nn.Conv2d)]
    if any(t is not nn.ReLU for t in between) or len(between) != len(convs) - 1:
        raise ValueError("equalise a folded model (fuse() it first): convolutions with one ReLU between each pair")
    peaks: list[torch.Tensor | None] = [None] * len(convs)

    def keep_peak(i: int, x: torch.Tensor, _y: torch.Tensor) -> None:
        p = x.detach().float().amax(dim=(0, 2, 3))
        peaks[i] = p if peaks[i] is None else torch.maximum(peaks[i], p)

    _watch_convs(model, batches, keep_peak)
    gains = []
    for before, conv, peak in zip(convs[:-1], convs[1:], peaks[1:]):
        g = (peak.max() / peak.clamp_min(peak.max() * 1e-6)) ** strength
        g = torch.where(peak > 0, g.clamp(1.0, max_gain), torch.ones_like(g))
        before.weight.mul_(g.view(-1, 1, 1, 1))
        before.bias.mul_(g)
        conv.weight.div_(g.view(1, -1, 1, 1))
        gains.append(g)
    return gains


def best_scale(values: torch.Tensor, zero_point: int, steps: int = 100) -> float:
    """The uint8 scale (with ``zero_point``) of least squared rounding-and-clipping error on
    ``values``: a search over clipping points from 1 % to 100 % of the largest value."""
    hi = float(values.abs().max())
    if hi == 0:
        return 1.0 / ACT_MAX
    room = max(ACT_MAX - zero_point, zero_point) if zero_point else ACT_MAX
    best, best_err = hi / room, float("inf")
    for k in range(1, steps + 1):
        s = hi * k / steps / room
        err = float(((fake_quant(values, torch.tensor(s), zero_point, 0, ACT_MAX) - values) ** 2).mean())
        if err < best_err:
            best, best_err = s, err
    return best


def prepare_qat(model: DnCNN, spec: QuantSpec = QuantSpec(), calibration: Iterable | None = None) -> DnCNN:
    """A copy of ``model`` with BatchNorm folded and every body convolution a :class:`QuantConv2d`;
    activations equalised (``spec.equalise``) and their scales fitted on ``calibration`` (a list
    of ``(noisy, noise_map or None)`` batches), or 1/255 placeholders to be overwritten by a
    checkpoint's (which holds the equalised weights). The estimator (noise-map models) is
    frozen: the engine runs it in float."""
    qat = copy.deepcopy(model).float().fuse()
    qat.train()
    convs = _body_convs(qat)
    if calibration is not None:
        if spec.equalise:
            equalise_activations(qat, calibration, spec.equalise)
        inputs, noise = _calibrate(qat, calibration)  # in eval mode, then back to training
        scales = [1 / 255] + [best_scale(v, 0) for v in inputs[1:]]
        noise_scale = best_scale(noise, NOISE_ZERO_POINT)
    else:
        scales, noise_scale = [1 / 255] * len(convs), 1 / 255
    layers: list[nn.Module] = []
    i = 0
    for m in qat.body:
        if isinstance(m, nn.Conv2d):
            last = i == len(convs) - 1
            q_out = ActQuant(noise_scale, NOISE_ZERO_POINT) if last and not spec.float_last else None
            layers.append(QuantConv2d(m, ActQuant(scales[i], 0, learn=i > 0 and spec.learn_activation_scale),
                                      spec.weight_max, q_out,
                                      float_weights=last and spec.float_last,
                                      learn_weight_scale=spec.learn_weight_scale))
            i += 1
        else:
            layers.append(m)
    qat.body = nn.Sequential(*layers)
    qat.quant_spec = spec
    if qat.estimator is not None:
        qat.estimator.requires_grad_(False)
    return qat


def float_model(qat: DnCNN) -> DnCNN:
    """The QAT model's float weights in a plain (folded) DnCNN: what the graph is exported from
    before its weights are rounded."""
    plain = copy.deepcopy(qat)
    plain.body = nn.Sequential(*[m.float_conv() if isinstance(m, QuantConv2d) else m for m in plain.body])
    return plain.eval()


# --------------------------------------------------------------------------- the QDQ graph

def int8_onnx_bytes(qat: DnCNN, opset: int = DEFAULT_OPSET) -> bytes:
    """The QAT model as a QDQ ONNX graph (tiles: :func:`~cleanvision.export.onnx_bytes` with
    ``whole_image=False``) that ONNX Runtime fuses into int8 convolutions.

    The float graph is exported, then each body convolution gets QuantizeLinear →
    DequantizeLinear on its input, int8 weights and int32 bias behind DequantizeLinear, and
    (quantised last convolution) QuantizeLinear → DequantizeLinear on its output: the pattern
    ONNX Runtime's QDQ selector turns into QLinearConv (the ReLU before a uint8 QuantizeLinear
    with zero point 0 is absorbed by its clamp)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    from .export import onnx_bytes

    qconvs = quant_convs(qat)
    if not qconvs:
        raise ValueError("not a QAT model: prepare_qat() it first")
    proto = onnx.load_from_string(onnx_bytes(float_model(qat), opset, whole_image=False))
    graph = proto.graph
    conv_at = [i for i, n in enumerate(graph.node) if n.op_type == "Conv"]
    convs = [graph.node[i] for i in conv_at]
    if len(convs) != len(qconvs):
        raise AssertionError(f"{len(convs)} Conv nodes in the graph, {len(qconvs)} in the body")
    before_conv: dict[int, list] = {}  # position of a Conv node -> nodes to put before it
    after_conv: dict[int, list] = {}

    def const(name: str, array: np.ndarray) -> str:
        graph.initializer.append(numpy_helper.from_array(array, name))
        return name

    for k, (at, node, q) in enumerate(zip(conv_at, convs, qconvs)):
        before = []
        s_in = float(q.input_quant.effective_scale().detach())
        x = node.input[0]
        s_name = const(f"q{k}_x_scale", np.array(s_in, np.float32))
        z_name = const(f"q{k}_x_zero", np.array(0, np.uint8))
        before += [helper.make_node("QuantizeLinear", [x, s_name, z_name], [f"q{k}_x_q"], name=f"q{k}_x_Q"),
                   helper.make_node("DequantizeLinear", [f"q{k}_x_q", s_name, z_name], [f"q{k}_x_dq"],
                                    name=f"q{k}_x_DQ")]
        node.input[0] = f"q{k}_x_dq"
        if not q.float_weights:
            wq, ws = quantise_weight(q.weight, q.weight_max, q.weight_scales())
            sb = (ws.double() * s_in).numpy()
            bq = np.clip(np.round(q.bias.detach().double().numpy() / sb), INT32_MIN, INT32_MAX).astype(np.int32)
            const(f"q{k}_w", wq.numpy())
            const(f"q{k}_w_scale", ws.numpy().astype(np.float32))
            const(f"q{k}_w_zero", np.zeros(len(ws), np.int8))
            const(f"q{k}_b", bq)
            const(f"q{k}_b_scale", sb.astype(np.float32))
            const(f"q{k}_b_zero", np.zeros(len(ws), np.int32))
            before += [helper.make_node("DequantizeLinear", [f"q{k}_w", f"q{k}_w_scale", f"q{k}_w_zero"],
                                        [f"q{k}_w_dq"], name=f"q{k}_w_DQ", axis=0),
                       helper.make_node("DequantizeLinear", [f"q{k}_b", f"q{k}_b_scale", f"q{k}_b_zero"],
                                        [f"q{k}_b_dq"], name=f"q{k}_b_DQ", axis=0)]
            node.input[1] = f"q{k}_w_dq"
            if len(node.input) > 2:
                node.input[2] = f"q{k}_b_dq"
            else:
                node.input.append(f"q{k}_b_dq")
        before_conv[at] = before
        if q.output_quant is not None:
            y = node.output[0]
            so = const(f"q{k}_y_scale", np.array(float(q.output_quant.effective_scale().detach()), np.float32))
            zo = const(f"q{k}_y_zero", np.array(NOISE_ZERO_POINT, np.uint8))
            node.output[0] = f"q{k}_y_raw"
            after_conv[at] = [
                helper.make_node("QuantizeLinear", [f"q{k}_y_raw", so, zo], [f"q{k}_y_q"], name=f"q{k}_y_Q"),
                helper.make_node("DequantizeLinear", [f"q{k}_y_q", so, zo], [y], name=f"q{k}_y_DQ")]
    nodes = []
    for i, n in enumerate(graph.node):
        nodes += before_conv.get(i, []) + [n] + after_conv.get(i, [])
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unused(graph)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _drop_unused(graph) -> None:
    """Remove the float weights the int8 ones replaced, and the Identity nodes the exporter
    shares equal initializers through."""
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        for n in dead:
            graph.node.remove(n)
        if not dead:
            break
    used = {i for n in graph.node for i in n.input}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)
