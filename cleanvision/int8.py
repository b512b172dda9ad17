"""The int8 graph of a model folder: where it lives, what its metadata says, and whether it may run.

A model folder (or Hub repo) may hold, beside ``model.safetensors``, ``model_int8.onnx``: the
network fine-tuned with int8 rounding (``scripts/qat.py``, :mod:`cleanvision.quantize`) as an
ONNX QDQ graph that ONNX Runtime runs with int8 convolutions. Its metadata records:

- ``weights_sha256``: the sha256 of the float weights it was made from. A graph beside other
  weights is *stale* (the float model was retrained, the graph was not) and is refused;
- ``quantization``: the :class:`~cleanvision.quantize.QuantSpec` (weight range, float last layer);
- ``qat``: how it was fine-tuned (steps, data, command);
- ``quality_gate``: once measured by ``scripts/int8_gate.py`` on the full gate sets, the result
  (``passed``, each set's mean and worst-image Δ against the float model). ``engine="auto"``
  takes int8 only from a graph whose gate passed (:data:`~cleanvision.options.INT8_AUTO_RULE`).

``engine="int8"`` asked explicitly runs any fresh graph (gate or not) and raises
:class:`~cleanvision.errors.Int8Unavailable` when it cannot; ``engine="auto"`` never raises for
it: it falls back to a float engine and says why (:func:`auto_int8`).
"""
from __future__ import annotations

import json
from pathlib import Path


#: The int8 graph's file name in a model folder or Hub repo.
INT8_FILE = "model_int8.onnx"
#: The gate ``engine="auto"`` asks of an int8 graph: at most this much below the float model,
#: mean per gate set, and on the worst image of each (dB).
GATE_MEAN_DB, GATE_WORST_DB = 0.10, 0.5
#: Largest int8 weight for which ONNX Runtime's u8×s8 product on AVX2 without VNNI
#: (``vpmaddubsw``, pair sums in int16) cannot saturate: 255 · 64 · 2 ≤ 32767.
SATURATION_FREE_WEIGHT_MAX = 64
#: CPU flags whose int8 dot products accumulate in int32 (no saturation whatever the weights).
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
REBUILD_HINT = "rebuild it with: python scripts/qat.py MODEL_DIR --output_dir OUT"


# --------------------------------------------------------------------------- writing the file

def read_metadata(path: str | Path) -> dict[str, str]:
    """The graph's metadata (needs the onnx package)."""
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def write_graph(path: str | Path, graph: bytes, metadata: dict[str, str], overwrite: bool = False) -> Path:
    """Write ``graph`` with ``metadata`` (merged over what it has) atomically."""
    import onnx

    from .image_io import write_file

    proto = onnx.load_from_string(graph)
    meta = {p.key: p.value for p in proto.metadata_props} | metadata
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, meta)
    onnx.checker.check_model(proto)
    return write_file(path, proto.SerializeToString(), overwrite)


def record_gate(path: str | Path, sets: list[dict], command: str) -> dict:
    """Store a quality-gate measurement (``sets``: data, condition, images, psnr_float,
    psnr_int8, delta, worst_image_delta) in the graph's metadata; returns the record, whose
    ``passed`` is whether every set is within :data:`GATE_MEAN_DB` and :data:`GATE_WORST_DB`."""
    passed = bool(sets) and all(s["delta"] >= -GATE_MEAN_DB and s["worst_image_delta"] >= -GATE_WORST_DB
                                for s in sets)
    record = {"passed": passed, "mean_db": GATE_MEAN_DB, "worst_image_db": GATE_WORST_DB, "sets": sets,
              "command": command}
    write_graph(path, Path(path).read_bytes(), {"quality_gate": json.dumps(record)}, overwrite=True)
    return record
