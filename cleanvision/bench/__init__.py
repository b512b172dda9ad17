"""The benchmark behind every published CleanVision number (``cleanvision eval``).

Modules, one concern each:

* :mod:`~cleanvision.bench.sets`: clean sets, the frozen noisy benchmark of ``../shared/bench``,
  the paper protocol's noise, real noisy/truth pairs, the undamaged condition;
* :mod:`~cleanvision.bench.methods`: the models and classical baselines compared;
* :mod:`~cleanvision.bench.published`: numbers quoted from papers;
* :mod:`~cleanvision.bench.run`: scoring every method on every image (PSNR / SSIM, timing);
* :mod:`~cleanvision.bench.render`: the markdown tables and the figure;
* :mod:`~cleanvision.bench.command`: the command line (``cleanvision eval``, ``python -m cleanvision.bench``).

Library functions raise :class:`~cleanvision.bench.sets.BenchError`; the CLI turns it into a
message and an exit code.
"""
from .command import FIGURE_NAME, JSON_NAME, MD_NAME, add_eval_parser, build_parser, main_from_args
from .methods import ALL_METHODS, Method, build_methods, training_stages
from .published import QUOTED
from .render import model_keys, render_markdown
from .run import evaluate_set, merge_into, ssim_value
from ..image_io import centre_crop
from .sets import EXTENDED_CONDITIONS, FROZEN_CONDITIONS, UNDAMAGED, BenchError

__all__ = ["ALL_METHODS", "EXTENDED_CONDITIONS", "FIGURE_NAME", "FROZEN_CONDITIONS", "JSON_NAME", "MD_NAME",
           "QUOTED", "BenchError", "Method", "add_eval_parser", "build_methods", "build_parser", "centre_crop",
           "evaluate_set", "main_from_args", "merge_into", "model_keys", "render_markdown", "ssim_value",
           "training_stages", "UNDAMAGED"]
