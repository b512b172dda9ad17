#!/usr/bin/env python
"""Deepen a trained DnCNN by inserting middle layers that start as the identity (Net2Net).

    python scripts/deepen_model.py cleanvision/weights/default -o runs/deep16-init --add 4
    python train_accelerate.py --init_from runs/deep16-init --depth 16 ...

Training a larger network from scratch takes far longer than 2 CPU cores give in a session;
growing the trained one keeps everything it learnt and adds capacity to fine-tune. Each new
block (3×3 conv, BatchNorm, ReLU) goes in the middle of the body: its convolution is the
identity kernel, its BatchNorm's running statistics are those of the activations it receives
on the training mix (the photos training uses, held-out 5 % excluded) and its scale and shift
undo them, so in eval mode the deeper network computes exactly what the original does (the
script checks this), and in training mode (batch statistics) nearly so (the shipped model
deepened by 4: about 5 % more loss on its first batch). Score the fine-tuned result with
``scripts/heldout_check.py``; a deeper network is slower in proportion (``cleanvision bench``).
"""
from __future__ import annotations

import sys
from collections.abc import Iterable
from itertools import islice
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from cleanvision import DnCNN  # noqa: E402
from cleanvision.real_noise import TRAIN_MIX, training_batch  # noqa: E402
from precise_bn import model_tool_parser, training_loader, write_record  # noqa: E402


def blocks(model: DnCNN) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """The (conv, BatchNorm) pairs of the middle layers, in order."""
    mods = list(model.body)
    return [(mods[i], mods[i + 1]) for i in range(2, len(mods) - 1, 3)]


@torch.no_grad()
def activation_stats(model: DnCNN, after: int, inputs: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and variance of what the new blocks will get (the ReLU output of middle
    block ``after - 1``, or of the first layer when ``after`` is 0) over the input batches."""
    relu = model.body[1 + 3 * after]
    seen: list[torch.Tensor] = []
    hook = relu.register_forward_hook(lambda m, i, o: seen.append(o.transpose(0, 1).flatten(1).double()))
    model.eval()
    try:
        for x in inputs:
            model(x)
    finally:
        hook.remove()
    x = torch.cat(seen, dim=1)
    return x.mean(dim=1).float(), x.var(dim=1).float()


@torch.no_grad()
def deepen(model: DnCNN, add: int, mean: torch.Tensor, var: torch.Tensor, after: int) -> DnCNN:
    """A copy of ``model`` with ``add`` identity blocks inserted after middle block ``after``;
    ``mean``/``var`` are the statistics of their input (:func:`activation_stats`)."""
    if not model.batch_norm:
        raise ValueError("deepen a BatchNorm model (not a fused one)")
    old = blocks(model)
    new = DnCNN(**{**model._hub_mixin_config, "depth": model.depth + add})  # the same config, deeper
    if model.estimator is not None:  # a noise-map model keeps its estimator as it is
        new.estimator.load_state_dict(model.estimator.state_dict())
    mods, new_mods = list(model.body), list(new.body)
    for src, dst in ((mods[0], new_mods[0]), (mods[-1], new_mods[-1])):
        dst.load_state_dict(src.state_dict())
    fresh = blocks(new)
    for k, (conv, bn) in enumerate(fresh):
        if after <= k < after + add:
            conv.weight.zero_()
            for c in range(model.width):
                conv.weight[c, c, 1, 1] = 1.0
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.weight.copy_((var + bn.eps).sqrt())
            bn.bias.copy_(mean)
        else:
            src_conv, src_bn = old[k if k < after else k - add]
            conv.load_state_dict(src_conv.state_dict())
            bn.load_state_dict(src_bn.state_dict())
    return new.eval()


def main(argv: list[str] | None = None) -> int:
    ap = model_tool_parser(__doc__)
    ap.add_argument("--add", type=int, default=4, help="middle blocks to insert (default 4)")
    ap.add_argument("--batches", type=int, default=20, help="training batches for the new blocks' statistics")
    args = ap.parse_args(argv)
    if args.out.exists():
        ap.error(f"{args.out} exists; choose a new folder")
    if args.add < 1 or args.batches < 1:
        ap.error("--add and --batches must be at least 1")
    torch.manual_seed(args.seed)
    model = DnCNN.from_pretrained(args.model)
    loader, n_images = training_loader(args.train_data_dir, args.validation_fraction)
    after = len(blocks(model)) // 2
    noisy = (training_batch(clean.float() / 255.0, TRAIN_MIX)[1] for clean in islice(loader, args.batches))
    mean, var = activation_stats(model, after, noisy)
    deeper = deepen(model, args.add, mean, var, after)
    probe = training_batch(next(iter(loader)).float() / 255.0, TRAIN_MIX)[1]
    gap = (deeper(probe) - model(probe)).abs().max().item()
    if gap > 1e-4:
        raise SystemExit(f"the deepened model differs from the original by {gap:.2e}; not written")
    deeper.save_pretrained(args.out)
    write_record(args.model, args.out, "deepened",
                 {"from_depth": model.depth, "to_depth": deeper.depth, "inserted_after_block": after,
                  "statistics_batches": args.batches, "train_images": n_images, "max_output_change": gap},
                 "deepen_model.py", argv)
    print(f"wrote {args.out}: depth {model.depth} -> {deeper.depth}, output change {gap:.1e} (eval mode)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
