"""DnCNN (Zhang et al. 2017) and its pixel-unshuffle variant.

Residual learning: the body predicts the noise and the restored image is
``input - predicted noise``. 3×3 convolutions, BatchNorm, ReLU, zero padding, no pooling.

``pixel_unshuffle=2`` runs the same body at half resolution on 4× the channels, as FFDNet
does: about 2-4× less compute per pixel and twice the receptive field, which helps
inpainting scribbles.

``noise_map=1`` (or 3, one per colour) adds FFDNet's noise-level map: the body takes, beside
the image, the standard deviation of the noise at each pixel (σ/255, averaged to the body's
resolution), and a small estimator network reads that map from the image when none is given
(CBDNet's design; :mod:`cleanvision.noise_level` says what the map means). With
``noise_map=0`` (the default) the model is blind, as every earlier config.

Weights are saved and loaded the ``timm``/``diffusers`` way through
``huggingface_hub.PyTorchModelHubMixin``: ``save_pretrained(dir)`` writes ``config.json``
and ``model.safetensors``; ``from_pretrained(dir or repo id)`` loads them strictly and
never unpickles anything.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from torch import nn

from .errors import WeightsError
from .noise_level import apply_level_curve, check_level_curve, middle_level, without_impulses

WEIGHTS_FILE = "model.safetensors"


class DnCNN(nn.Module, PyTorchModelHubMixin, library_name="cleanvision",
            pipeline_tag="image-to-image", license="mit",
            tags=["image-restoration", "denoising", "dncnn"],
            repo_url="https://github.com/cleanvision/cleanvision",
            paper_url="https://arxiv.org/abs/1608.03981"):
    """DnCNN: ``depth`` conv layers (first conv+ReLU, ``depth-2`` conv+BN+ReLU, last conv).

    Args:
        channels: 3 for colour, 1 for grey.
        depth: total number of conv layers (17 in the paper for known σ, 20 for blind).
        width: feature channels of the middle layers (64 in the paper).
        pixel_unshuffle: 1 for DnCNN; 2 runs the body at half resolution (FFDNet-style).
        batch_norm: use BatchNorm in the middle layers (folded away by :meth:`fuse`).
        noise_map: channels of the noise-level map input (0: blind; 1: one level for all
            colours; 3: one per colour).
        estimator_depth, estimator_width: conv layers and width of the map estimator (plain
            conv + ReLU at the body's resolution; only with ``noise_map``).
        phase_correction: remove the predicted noise's constant offset per sub-pixel phase over
            the whole input (:func:`remove_phase_offset`), the faint dot grid an unshuffled
            body leaves otherwise. Off in configs written before it existed.
        level_curve: knots ``[[reading, level], ...]`` (σ on the 0-255 scale) that turn the
            estimator's one reading per photo into the level auto mode restores with
            (:meth:`auto_level`); fitted to the finished model on held-out photos
            (``scripts/fit_level_curve.py``). ``None``: the reading itself.
    """

    def __init__(self, channels: int = 3, depth: int = 17, width: int = 64,
                 pixel_unshuffle: int = 1, batch_norm: bool = True, noise_map: int = 0,
                 estimator_depth: int = 6, estimator_width: int = 32, phase_correction: bool = False,
                 level_curve: list[list[float]] | None = None):
        super().__init__()
        if depth < 3 or width < 1 or channels not in (1, 3) or pixel_unshuffle < 1:
            raise ValueError("DnCNN needs depth >= 3, width >= 1, channels 1 or 3, pixel_unshuffle >= 1")
        if noise_map not in (0, 1, channels) or (noise_map and (estimator_depth < 2 or estimator_width < 1)):
            raise ValueError(f"noise_map is 0 (blind), 1 or {channels} (one per colour) with "
                             "estimator_depth >= 2, estimator_width >= 1")
        self.channels, self.depth, self.width = channels, depth, width
        self.scale, self.batch_norm, self.noise_map = pixel_unshuffle, batch_norm, noise_map
        self.phase_correction = phase_correction and pixel_unshuffle > 1
        self.estimator_depth = estimator_depth if noise_map else 0
        self.estimator_width = estimator_width if noise_map else 0
        self.level_curve = check_level_curve(level_curve, noise_map)
        c = channels * pixel_unshuffle ** 2
        layers: list[nn.Module] = [nn.Conv2d(c + noise_map, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers.append(nn.Conv2d(width, width, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(width, c, 3, padding=1))
        self.body = nn.Sequential(*layers)
        # Start as the identity (predicted noise 0): training then spends no steps unlearning
        # the large random residual a fresh BN network predicts.
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
        self.estimator = _estimator(c, noise_map, estimator_depth, estimator_width) if noise_map else None
        #: Where the weights were loaded from (set by :func:`load_weights`), and the Hub repo they
        #: came from: the int8 engine looks for its graph beside them (:mod:`cleanvision.int8`).
        self.weights_file: Path | None = None
        self.hub_repo: dict | None = None

    @property
    def receptive_radius(self) -> int:
        """Pixels on each side that influence one output pixel when the map is given (tiles
        overlap by this much)."""
        return self.depth * self.scale + self.scale

    @property
    def estimator_radius(self) -> int:
        """Pixels on each side that influence one pixel of the estimated map."""
        return self.estimator_depth * self.scale + self.scale + 1  # + 1: the impulse check's 3×3 median

    def pad_to_scale(self, x: torch.Tensor) -> torch.Tensor:
        """Pad bottom/right by edge replication to a multiple of the unshuffle factor."""
        ph, pw = -x.shape[-2] % self.scale, -x.shape[-1] % self.scale
        return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x

    def _unshuffle(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(self.pad_to_scale(x), self.scale) if self.scale > 1 else x

    def _full_res(self, m: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """A body-resolution map back at image resolution (each value over its s×s pixels)."""
        if self.scale > 1:
            m = m.repeat_interleave(self.scale, dim=-2).repeat_interleave(self.scale, dim=-1)
        return m[..., :h, :w]

    def estimate_noise(self, x: torch.Tensor, bf16: bool = False) -> torch.Tensor:
        """The noise-level map the estimator reads from ``x``: N×``noise_map``×H×W, σ/255.

        ``bf16``: every convolution after the first in bfloat16. The first stays fp32 because
        bf16's 8-bit mantissa would round the photo itself by up to a grey level, as much as the
        faint noise being read (it moved auto mode's level by up to 0.8; with the first in fp32,
        by at most 0.04 on held-out photos), at about three quarters of the fp32 estimator's time
        on an Intel Xeon with AMX."""
        if not self.noise_map:
            raise ValueError("this model is blind (noise_map=0): it has no noise-level estimator")
        return self._full_res(self._estimate(self._unshuffle(without_impulses(x)), bf16), *x.shape[-2:])

    def _estimate(self, y: torch.Tensor, bf16: bool = False) -> torch.Tensor:
        if bf16:
            with torch.autocast(y.device.type, enabled=False):
                y = self.estimator[:2](y.float())  # first convolution and its ReLU
            with torch.autocast(y.device.type, dtype=torch.bfloat16):
                y = self.estimator[2:](y)
        else:
            y = self.estimator(y)
        # softplus keeps the level positive with a gradient everywhere; 10/255 sets its unit
        return F.softplus(y.float()) * (ESTIMATOR_UNIT / 255.0)

    def predict_noise(self, x: torch.Tensor, noise_map: torch.Tensor | None = None,
                      _estimate: list | None = None, per_image_level: bool = False) -> torch.Tensor:
        """The residual (noise) the network sees in ``x`` (N×C×H×W, values in [0, 1]).

        ``noise_map`` (N×``noise_map``×H×W, σ/255; noise-map models only): the noise level at
        each pixel; ``None`` reads it from ``x`` with the estimator.
        """
        h, w = x.shape[-2:]
        noise = self.network_noise(x, noise_map, _estimate, per_image_level)
        if self.phase_correction:
            noise = remove_phase_offset(noise, self.scale)
        return noise[..., :h, :w]

    def auto_level(self, reading: torch.Tensor) -> torch.Tensor:
        """The level auto mode restores with (σ/255) for the estimator's reading of a photo
        (σ/255, any shape): the reading through :attr:`level_curve`, or the reading itself.
        The estimator is fitted to the training map's definition (the std of the noise), while
        what the denoiser restores a photo best with can differ (about twice the std of faint
        camera noise, none for a photo's own grain): the curve is that correction, measured."""
        if self.level_curve is None:
            return reading
        return apply_level_curve(reading * 255.0, self.level_curve) / 255.0

    def with_level_curve(self, curve: list[list[float]] | None) -> "DnCNN":
        """Set (or with ``None`` remove) :attr:`level_curve`, in the saved config too; returns self."""
        self.level_curve = check_level_curve(curve, self.noise_map)
        self._hub_mixin_config["level_curve"] = self.level_curve
        return self

    def network_noise(self, x: torch.Tensor, noise_map: torch.Tensor | None = None,
                      _estimate: list | None = None, per_image_level: bool = False) -> torch.Tensor:
        """The network's residual before the whole-input phase correction, at ``x``'s size padded
        to the unshuffle factor: what a tile contributes (:class:`~cleanvision.inference.Denoiser`
        corrects the assembled image once). ``per_image_level``: with no ``noise_map``, restore
        with one level per image read from the estimator's map (:func:`middle_level`), as auto
        mode does, rather than with the map itself."""
        h, w = x.shape[-2:]
        y = self._unshuffle(x)
        if self.noise_map:
            if noise_map is None or _estimate is not None:
                est = self._estimate(self._unshuffle(without_impulses(x)))
                if _estimate is not None:
                    _estimate.append(self._full_res(est, h, w))
            if noise_map is None:
                m = self.auto_level(middle_level(est)).expand_as(est) if per_image_level else est
            elif noise_map.stride(-1) == 0 and noise_map.stride(-2) == 0:
                # one level per image, expanded (auto mode, a number): its pooled map is itself,
                # taken without averaging a full-resolution map on every tile
                m = noise_map[..., :1, :1].to(x.dtype).expand(-1, -1, *y.shape[-2:])
            else:
                m = self.pad_to_scale(noise_map.to(x.dtype))
                m = F.avg_pool2d(m, self.scale) if self.scale > 1 else m
            y = _with_map(y, m)
        elif noise_map is not None:
            raise ValueError("this model is blind (noise_map=0): it takes no noise-level map")
        out = self.body(y)
        return F.pixel_shuffle(out, self.scale) if self.scale > 1 else out

    def forward(self, x: torch.Tensor, noise_map: torch.Tensor | None = None,
                with_estimate: bool = False, estimate_only: bool = False, per_image_level: bool = False):
        """Restored image: input minus the predicted noise. ``with_estimate`` (noise-map models)
        also returns the estimator's map, so training fits both in one forward pass;
        ``estimate_only`` returns the map alone; ``per_image_level`` restores with one level per
        image read from that map (:meth:`network_noise`). Training the estimator with the
        denoiser frozen runs through ``forward`` too, as a data-parallel wrapper needs."""
        if estimate_only:
            return self.estimate_noise(x)
        if not with_estimate:
            return x - self.predict_noise(x, noise_map, per_image_level=per_image_level)
        est: list = []
        restored = x - self.predict_noise(x, noise_map, est, per_image_level)
        return restored, est[0]

    @classmethod
    def with_noise_map(cls, blind: "DnCNN", noise_map: int = 1, estimator_depth: int = 6,
                       estimator_width: int = 32) -> "DnCNN":
        """A noise-map model that starts as exactly ``blind``: the same weights, with zero weights
        for the map's input channels (so the map changes nothing until training gives it
        weight) and a fresh estimator."""
        if blind.noise_map:
            raise ValueError("the model already takes a noise-level map")
        model = cls(blind.channels, blind.depth, blind.width, blind.scale, blind.batch_norm,
                    noise_map, estimator_depth, estimator_width, blind.phase_correction)
        state = {k: v.clone() for k, v in blind.state_dict().items()}
        w = state["body.0.weight"]
        state["body.0.weight"] = torch.cat([w, w.new_zeros(w.shape[0], noise_map, *w.shape[2:])], dim=1)
        state.update({f"estimator.{k}": v for k, v in model.estimator.state_dict().items()})
        model.load_state_dict(state, strict=True)
        return model.train(blind.training)

    @torch.no_grad()
    def fuse(self) -> "DnCNN":
        """Fold each BatchNorm into the conv before it (inference only; returns self)."""
        if not self.batch_norm:
            return self
        self.eval()
        mods, fused = list(self.body), []
        i = 0
        while i < len(mods):
            m = mods[i]
            if isinstance(m, nn.Conv2d) and i + 1 < len(mods) and isinstance(mods[i + 1], nn.BatchNorm2d):
                fused.append(torch.nn.utils.fusion.fuse_conv_bn_eval(m, mods[i + 1]))
                i += 2
            else:
                fused.append(m)
                i += 1
        self.body = nn.Sequential(*fused)
        self.batch_norm = False  # the module now has no BN; saving it gives a BN-free config
        self._hub_mixin_config["batch_norm"] = False
        return self

    @property
    def flops_per_pixel(self) -> float:
        """Multiply-adds × 2 per input pixel, for speed reports."""
        c, w = self.channels * self.scale ** 2, self.width
        macs = 9 * ((c + self.noise_map) * w + (self.depth - 2) * w * w + w * c) / self.scale ** 2
        if self.noise_map:  # the estimator, run once per pixel in auto mode
            e = self.estimator_width
            macs += 9 * (c * e + (self.estimator_depth - 2) * e * e + e * self.noise_map) / self.scale ** 2
        return 2.0 * macs

    # ------------------------------------------------------------------ loading

    def _save_pretrained(self, save_directory: Path) -> None:
        """The mixin's save, then the weights get the mode a plain ``open()`` gives (safetensors
        writes through ``mkstemp``, which makes 0600 whatever the umask)."""
        from .image_io import give_open_mode

        super()._save_pretrained(save_directory)
        give_open_mode(Path(save_directory) / WEIGHTS_FILE)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir, force_download: bool,
                         local_files_only: bool, token, map_location: str = "cpu",
                         strict: bool = True, **model_kwargs) -> "DnCNN":
        """Load ``model.safetensors`` strictly; never fall back to pickled weights."""
        if os.path.isdir(model_id):
            path = Path(model_id) / WEIGHTS_FILE
            if not path.is_file():
                raise WeightsError(f"{model_id}: no {WEIGHTS_FILE} in this folder")
        else:
            path = Path(hf_hub_download(repo_id=model_id, filename=WEIGHTS_FILE, revision=revision,
                                        cache_dir=cache_dir, force_download=force_download,
                                        token=token, local_files_only=local_files_only))
        model = load_weights(cls(**model_kwargs), path)
        if not os.path.isdir(model_id):
            model.hub_repo = {"repo_id": model_id, "revision": revision, "cache_dir": cache_dir,
                              "local_files_only": local_files_only}
        return model


def _with_map(y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """The body's input: ``y`` with the map ``m`` as its last channels, in ``y``'s memory layout.
    ``torch.cat`` gives a channels-first tensor whatever its inputs; the fast engines run
    channels-last, and a channels-first input cost the first convolution a reorder (the whole
    network 2-3 % slower than the blind one on the same tiles, Intel Xeon with AMX)."""
    c = y.shape[1]
    out = torch.empty((y.shape[0], c + m.shape[1], *y.shape[2:]), dtype=y.dtype, device=y.device,
                      memory_format=torch.channels_last if _channels_last(y) else torch.contiguous_format)
    out[:, :c] = y
    out[:, c:] = m
    return out


def _channels_last(t: torch.Tensor) -> bool:
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def remove_phase_offset(noise: torch.Tensor, scale: int) -> torch.Tensor:
    """``noise`` (N×C×H×W, H and W multiples of ``scale``) without its mean offset per sub-pixel
    phase of each ``scale``×``scale`` cell, per image and colour.

    A body that runs on a pixel-unshuffle predicts each phase of a cell in its own channel, and
    learns slightly different offsets for them (about one grey level on flat areas for the
    blind 2×2 model): a fixed dot grid. Genuine noise has no fixed phase, so its mean deviation
    per phase over a whole image is near zero and subtracting the measured one removes the grid
    and little else (``scripts/pixel_pattern.py`` measures both).
    """
    if scale == 1:
        return noise
    if not torch.jit.is_tracing() and (noise.shape[-2] % scale or noise.shape[-1] % scale):
        raise ValueError(f"H and W must be multiples of {scale}, got {tuple(noise.shape[-2:])}")
    n, c, h, w = noise.shape
    v = noise.reshape(n, c, h // scale, scale, w // scale, scale)
    return (v - phase_offset(noise, scale)).reshape(n, c, h, w)


def phase_offset(noise: torch.Tensor, scale: int) -> torch.Tensor:
    """The offset :func:`remove_phase_offset` subtracts: N×C×1×``scale``×1×``scale``, to broadcast
    over ``noise`` viewed as N×C×rows×row phase×columns×column phase. Read through that strided
    view in one pass rather than through copies by pixel_unshuffle and back (3.4× faster at
    512×512, Intel Xeon)."""
    n, c, h, w = noise.shape
    phase = noise.reshape(n, c, h // scale, scale, w // scale, scale).mean(dim=(2, 4), keepdim=True)
    return phase - phase.mean(dim=(3, 5), keepdim=True)


def round_keeping_phase_means(v: torch.Tensor, scale: int) -> np.ndarray:
    """``v`` (C×H×W or H×W floats, each value within the integer range it is rounded to) rounded
    to integers, as a numpy array of the same shape, so that every sub-pixel phase of each
    ``scale``×``scale`` cell, in each colour, keeps its float sum to within half a level: plain
    rounding, then in a phase whose rounding moved its sum by d levels, the d values nearest a
    half moved one level the other way (the largest-remainder rule). :func:`remove_phase_offset`
    evens the phases out in float, but plain rounding of an output that differs little from its
    input brings a difference back (a photo that needs nothing: the 2-pixel pattern score of the
    first 20 CBSD68 photos from 0.19 in float to 23.6 rounded, and 0.32 rounded this way;
    docs/benchmark.md). Colour planes first, as the network's output comes: the phases are
    gathered by torch's copy, half the time of numpy's on an H×W×C array."""
    planes = v if v.dim() == 3 else v[None]
    out = torch.round(planes)  # half to even, as numpy.rint
    rounded = out.numpy()
    c, h, w = planes.shape
    hs, ws = h // scale * scale, w // scale * scale
    if scale > 1 and hs > 0 and ws > 0:
        # what rounding took off each value, in [-0.5, 0.5], as phase row × phase column × colour × cell
        # (a trailing odd row or column is left as plainly rounded)
        rest = (planes[:, :hs, :ws] - out[:, :hs, :ws]).reshape(c, hs // scale, scale, ws // scale, scale)
        rest = rest.permute(2, 4, 0, 1, 3).reshape(scale, scale, c, -1).numpy()
        moved = np.rint(rest.sum(axis=-1, dtype=np.float64)).astype(int)  # levels each phase's sum lost
        for dy, dx, ch in zip(*np.nonzero(moved)):
            k, sign = abs(int(moved[dy, dx, ch])), int(np.sign(moved[dy, dx, ch]))
            key = sign * rest[dy, dx, ch]  # the k largest: rounded down (up) nearest a half
            near = np.flatnonzero(key > 0.4)  # usually holds them; else every value is looked at
            pick = near[np.argpartition(-key[near], k - 1)[:k]] if len(near) >= k else np.argpartition(-key, k - 1)[:k]
            i, j = np.divmod(pick, ws // scale)
            rounded[ch, dy + scale * i, dx + scale * j] += sign
    return rounded if v.dim() == 3 else rounded[0]


#: The estimator's output unit (σ on the 0-255 scale): its softplus is read in tens of levels.
ESTIMATOR_UNIT = 10.0


def _estimator(c: int, out: int, depth: int, width: int) -> nn.Sequential:
    """The noise-level estimator: ``depth`` plain 3×3 convs with ReLU (CBDNet's has 5), no
    BatchNorm, so it runs the same in training and inference."""
    layers: list[nn.Module] = [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True)]
    for _ in range(depth - 2):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(width, out, 3, padding=1))
    return nn.Sequential(*layers)


def load_weights(model: DnCNN, path: str | Path) -> DnCNN:
    """Load a safetensors file into ``model`` with strict key and shape checks."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0:3]
        raise WeightsError(f"{path}: weights do not match config.json: {' '.join(first)}") from None
    model.weights_file = Path(path)
    return model.eval()

