"""The choices and defaults a user picks among: engines, tile sizes, the pixel limit, ONNX opsets,
and the words for what the model restores.

Kept free of heavy imports (no numpy, torch, OpenCV, ONNX) so that building the command line,
and with it every ``--help``, takes a blink; the modules that act on these values
(:mod:`~cleanvision.inference`, :mod:`~cleanvision.image_io`, :mod:`~cleanvision.export`)
import them from here.
"""
from __future__ import annotations

#: The engines a Denoiser runs (the one list; the CLI's ``--engine`` choices come from it).
ENGINES = ("auto", "reference", "fp32", "bf16", "onnxruntime", "int8")
#: When ``engine="auto"`` takes int8, in words; the rule is ``cleanvision.int8.auto_int8``. It is
#: read from the model folder, not fixed here: the int8 graph must be made from these very weights
#: (its recorded sha256) and record a passed quality gate (``scripts/int8_gate.py``: at most
#: 0.10 dB below the float model on each gate set, 0.5 dB on the worst image), and the CPU must be
#: a kind where int8 won the speed table (docs/speed.md): no AMX (bf16 is fastest there), and VNNI
#: or, with AVX2 alone, weights within 7 bits (no u8×s8 saturation). No shipped graph has passed
#: yet, so the shipped model's ``auto`` is unchanged.
INT8_AUTO_RULE = ("int8 where the model folder has an int8 graph made from these weights that passed its "
                  "quality gate, on a CPU without AMX")
#: What ``engine="auto"`` picks, in words (for ``--help`` texts); the rule is ``Denoiser._resolve``.
AUTO_RULE = (f"{INT8_AUTO_RULE}; else bf16 where the hardware computes it natively, else onnxruntime on a CPU "
             "where installed, else fp32")

#: Fastest tile side per engine on a 2-core CPU (``cleanvision bench --tile-sweep``, docs/speed.md,
#: "Tile size"). Small tiles keep a layer's activations in cache, which pays on a CPU with AMX
#: (bf16 at 2040×1080: 384 px 22 % faster than 512); elsewhere the overlap they add costs more
#: (AMD EPYC, AVX-512: 512 px 7 % faster than 384 for bf16). ONNX Runtime's convolutions gain on
#: large inputs (AMD EPYC: 1024 px 16 % faster than 384 in fp32, 27 % in int8) for ~1 GB of memory.
TILE_SIZE_AMX = 384
TILE_SIZE_CPU = 512
TILE_SIZE_ONNXRUNTIME = 1024
#: On a GPU bigger tiles mean fewer, fuller kernel launches (not swept here: no GPU).
GPU_TILE_SIZE = 1024
#: With the default tile, a photo of at most this many pixels runs in one pass whatever the
#: tile: small photos gain nothing from cache-sized tiles and lose the tiles' overlap (Intel Xeon
#: with AMX, bf16, one pass against 384-px tiles: 512×512 48 ms against 57, 640×480 61 against
#: 74; fp32 at 512×512 401 against 441; at 1024×768 the tiles stay faster, 158 against 300).
ONE_PASS_PIXELS = 640 * 480
#: The rule in words, for ``--help`` texts; the rule is ``cleanvision.inference.default_tile_size``.
TILE_RULE = (f"{TILE_SIZE_ONNXRUNTIME} for the onnxruntime and int8 engines and on a GPU, {TILE_SIZE_AMX} for "
             f"the torch engines on a CPU with AMX, else {TILE_SIZE_CPU}; photos of up to "
             f"{ONE_PASS_PIXELS:,} pixels in one pass")

#: Default largest image accepted, in pixels (about a 100-megapixel photo).
MAX_PIXELS = 100_000_000

#: Widely supported (ONNX Runtime ≥ 1.12, OpenVINO, TensorRT); every op here exists since opset 11.
DEFAULT_OPSET = 17
#: The range torch's TorchScript-based exporter writes this network for.
MIN_OPSET, MAX_OPSET = 11, 20

#: Every kind of damage the model is trained for, in the words ``--help`` and the docs use.
DAMAGE = ("Gaussian noise, salt-and-pepper noise, speckle noise and scribbles or scratches, alone or "
          "mixed, and the damage real photos carry: camera sensor noise, JPEG artefacts and noisy grey photos")

#: Range of the strength knob: the fraction of the predicted damage removed.
STRENGTH_RANGE = (0.0, 1.0)
#: Range of a noise level a person may give a noise-map model (σ on the 0-255 scale): training
#: saw up to about 55 on the synthetic mix and 50 on real-photo damage, jittered by up to 1.25.
NOISE_LEVEL_RANGE = (0.0, 75.0)
