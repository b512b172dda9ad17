"""DnCNN (Zhang et al. 2017) and its pixel-unshuffle variant.

Residual learning: the body predicts the noise and the restored image is
``input - predicted noise``. 3×3 convolutions, BatchNorm, ReLU, zero padding, no pooling.

``pixel_unshuffle=2`` runs the same body at half resolution on 4× the channels, as FFDNet
does (without its noise-level map, so the model stays blind): about 2-4× less compute per
pixel and twice the receptive field, which helps inpainting scribbles.

Weights are saved and loaded the ``timm``/``diffusers`` way through
``huggingface_hub.PyTorchModelHubMixin``: ``save_pretrained(dir)`` writes ``config.json``
and ``model.safetensors``; ``from_pretrained(dir or repo id)`` loads them strictly and
never unpickles anything.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from torch import nn

from .errors import WeightsError

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
    """

    def __init__(self, channels: int = 3, depth: int = 17, width: int = 64,
                 pixel_unshuffle: int = 1, batch_norm: bool = True):
        super().__init__()
        if depth < 3 or width < 1 or channels not in (1, 3) or pixel_unshuffle < 1:
            raise ValueError("DnCNN needs depth >= 3, width >= 1, channels 1 or 3, pixel_unshuffle >= 1")
        self.channels, self.depth, self.width = channels, depth, width
        self.scale, self.batch_norm = pixel_unshuffle, batch_norm
        c = channels * pixel_unshuffle ** 2
        layers: list[nn.Module] = [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True)]
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

    @property
    def receptive_radius(self) -> int:
        """Pixels on each side that influence one output pixel (tiles overlap by this much)."""
        return self.depth * self.scale + self.scale

    def pad_to_scale(self, x: torch.Tensor) -> torch.Tensor:
        """Pad bottom/right by edge replication to a multiple of the unshuffle factor."""
        ph, pw = -x.shape[-2] % self.scale, -x.shape[-1] % self.scale
        return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x

    def predict_noise(self, x: torch.Tensor) -> torch.Tensor:
        """The residual (noise) the network sees in ``x`` (N×C×H×W, values in [0, 1])."""
        h, w = x.shape[-2:]
        if self.scale == 1:
            return self.body(x)
        y = F.pixel_unshuffle(self.pad_to_scale(x), self.scale)
        return F.pixel_shuffle(self.body(y), self.scale)[..., :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restored image: input minus the predicted noise."""
        return x - self.predict_noise(x)

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
        macs = 9 * (c * w + (self.depth - 2) * w * w + w * c) / self.scale ** 2
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
        model = cls(**model_kwargs)
        return load_weights(model, path)


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
    return model.eval()

