"""The benchmark behind every published CleanVision number (``cleanvision eval``).

Modules, one concern each:

* :mod:`~cleanvision.bench.options`: the conditions, methods and defaults ``cleanvision eval`` offers;
* :mod:`~cleanvision.bench.sets`: clean sets, the frozen noisy benchmark of ``../shared/bench``,
  the paper protocol's noise, real noisy/truth pairs, the undamaged condition;
* :mod:`~cleanvision.bench.methods`: the models and classical baselines compared;
* :mod:`~cleanvision.bench.published`: numbers quoted from papers;
* :mod:`~cleanvision.bench.run`: scoring every method on every image (PSNR / SSIM, timing);
* :mod:`~cleanvision.bench.render`: the markdown tables and the figure;
* :mod:`~cleanvision.bench.command`: the command line (``cleanvision eval``, ``python -m cleanvision.bench``).

Library functions raise :class:`~cleanvision.bench.sets.BenchError`; the CLI turns it into a
message and an exit code. The names below are imported on first use, so that building the
``cleanvision`` parser (and its ``--help``) does not load numpy, OpenCV or torch.
"""
from __future__ import annotations

import importlib

#: Each public name and the module it comes from.
_HOMES = {
    "FIGURE_NAME": ".command", "JSON_NAME": ".command", "MD_NAME": ".command", "add_eval_parser": ".command",
    "build_parser": ".command", "main_from_args": ".command",
    "ALL_METHODS": ".methods", "Method": ".methods", "build_methods": ".methods", "training_stages": ".methods",
    "QUOTED": ".published",
    "model_keys": ".render", "render_markdown": ".render",
    "evaluate_set": ".run", "merge_into": ".run", "ssim_value": ".run",
    "centre_crop": "..image_io",
    "EXTENDED_CONDITIONS": ".sets", "FROZEN_CONDITIONS": ".sets", "UNDAMAGED": ".sets", "BenchError": ".sets",
}


def __getattr__(name: str):
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__all__ = sorted(_HOMES)
