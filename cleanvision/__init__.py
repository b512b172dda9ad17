"""CleanVision: blind restoration of photos with Gaussian, salt-and-pepper, speckle and scribble damage."""
from .errors import CleanVisionError, ImageReadError, ImageWriteError, WeightsError
from .model import DnCNN

__version__ = "0.1.0"


def __getattr__(name: str):
    # Denoiser pulls in tiling/engine code; import lazily so `import cleanvision` stays light.
    if name == "Denoiser":
        from .inference import Denoiser
        return Denoiser
    raise AttributeError(name)


__all__ = ["DnCNN", "Denoiser", "CleanVisionError", "ImageReadError", "ImageWriteError", "WeightsError"]
