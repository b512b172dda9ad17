"""Convolution and ReLU in one oneDNN call, for the bf16 engine on the CPU.

On bfloat16 tensors ATen's ReLU is a pass of its own over memory: out of place it still took
about a fifth of a 96-channel layer's time and a third of a 32-channel one's (Intel Xeon with
AMX). oneDNN applies the ReLU to the convolution's output before it leaves the cache (a
"post-op"), as ``torch.compile`` does for CPU convolutions, with the same result: ReLU and
rounding to bf16 commute. ``torch.ops.mkldnn._convolution_pointwise`` is the op torch's own
compiler emits; where a torch build lacks it, :func:`fuse_relu` leaves the network as it is.
"""
from __future__ import annotations

import torch
from torch import nn

_CONV_RELU = getattr(torch.ops.mkldnn, "_convolution_pointwise", None)


def available() -> bool:
    """Whether this torch build has oneDNN's fused convolution and this CPU runs it in bf16
    (oneDNN's bf16 needs AVX-512 or AMX; elsewhere the bf16 engine keeps ATen's ops)."""
    bf16 = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return (_CONV_RELU is not None and torch.backends.mkldnn.is_available()
            and bf16 is not None and bool(bf16()))


class ConvReLU(nn.Module):
    """``relu(conv(x))`` in one oneDNN call, in ``dtype`` (inputs are cast to it)."""

    def __init__(self, conv: nn.Conv2d, dtype: torch.dtype):
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("ConvReLU takes zero-padded convolutions with numeric padding")
        self.weight = nn.Parameter(conv.weight.detach().to(dtype), requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().to(dtype),
                                                                requires_grad=False)
        self.padding, self.stride = list(conv.padding), list(conv.stride)
        self.dilation, self.groups = list(conv.dilation), conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _CONV_RELU(x.to(self.weight.dtype), self.weight, self.bias, self.padding, self.stride,
                          self.dilation, self.groups, "relu", [], "")


def fuse_relu(layers: nn.Sequential, dtype: torch.dtype = torch.bfloat16,
              first_dtype: torch.dtype | None = None) -> nn.Sequential:
    """``layers`` with each Conv2d that a ReLU follows replaced by a :class:`ConvReLU` and that
    ReLU by an ``Identity``, so indices into the sequence still mean the same layers.
    ``first_dtype``: the first convolution's dtype when it differs (the estimator's first
    convolution stays fp32: :meth:`cleanvision.model.DnCNN.estimate_noise`)."""
    mods = list(layers)
    first = True
    for i, (m, nxt) in enumerate(zip(mods, mods[1:])):
        if isinstance(m, nn.Conv2d) and isinstance(nxt, nn.ReLU):
            mods[i] = ConvReLU(m, first_dtype if first and first_dtype else dtype)
            mods[i + 1] = nn.Identity()
        first = first and not isinstance(m, nn.Conv2d)
    return nn.Sequential(*mods)
