"""CleanVision: blind restoration of photos with Gaussian, salt-and-pepper, speckle and scribble
damage, camera sensor noise and JPEG artefacts."""
from .errors import CleanVisionError, ImageReadError, ImageWriteError, OutputExistsError, WeightsError

__version__ = "0.1.0"

#: Names imported on first use, so that ``import cleanvision`` (and the ``cleanvision`` command,
#: whose ``--help`` needs none of them) does not load torch.
_LAZY = {"DnCNN": ".model", "Denoiser": ".inference"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["DnCNN", "Denoiser", "CleanVisionError", "ImageReadError", "ImageWriteError", "OutputExistsError",
           "WeightsError"]
