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
import warnings
from dataclasses import dataclass
from pathlib import Path

from .errors import Int8Unavailable
from .hardware import cpu_flags, ort_available


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
REBUILD_HINT = "python scripts/qat.py MODEL_DIR --output_dir OUT makes a model folder with a fresh one"


@dataclass
class Int8Graph:
    """An int8 graph ready to run: its ONNX Runtime session, file and metadata."""

    session: object
    path: Path
    metadata: dict[str, str]

    @property
    def gate(self) -> dict | None:
        return json.loads(self.metadata["quality_gate"]) if "quality_gate" in self.metadata else None

    @property
    def weight_max(self) -> int:
        return int(json.loads(self.metadata.get("quantization", "{}")).get("weight_max", 127))


def locate(model) -> Path | None:
    """The int8 graph beside ``model``'s weights (a local folder, or the Hub repo it came from,
    downloaded into the same cache); None when there is none or the model was not loaded from
    a file."""
    weights = getattr(model, "weights_file", None)
    if weights is not None and (Path(weights).parent / INT8_FILE).is_file():
        return Path(weights).parent / INT8_FILE
    hub = getattr(model, "hub_repo", None)
    if hub:
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(filename=INT8_FILE, **hub))
        except Exception:  # noqa: BLE001 - not in the repo, offline, no access: no graph
            return None
    return None


def weights_sha256(model) -> str | None:
    from .bench.sets import sha256_file

    weights = getattr(model, "weights_file", None)
    return sha256_file(Path(weights)) if weights is not None else None


def open_graph(model, threads: int | None = None, path: Path | None = None) -> Int8Graph:
    """The int8 graph of ``model`` as an ONNX Runtime session, checked against its weights.

    Raises :class:`Int8Unavailable` saying why not: no graph, no ONNX Runtime, a file ONNX
    Runtime cannot read, or a stale graph (made from other weights)."""
    path = path or locate(model)
    if path is None:
        where = Path(model.weights_file).parent if getattr(model, "weights_file", None) else "this model"
        raise Int8Unavailable(f"no int8 graph ({INT8_FILE}) beside the weights of {where}; {REBUILD_HINT}")
    if not ort_available():
        from .export import INSTALL_HINT

        raise Int8Unavailable(f"the int8 engine needs onnxruntime and onnx: {INSTALL_HINT}")
    from .export import ort_session

    try:
        session = ort_session(None, threads, graph=Path(path).read_bytes())
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file
        raise Int8Unavailable(f"{path}: ONNX Runtime cannot load it ({type(e).__name__}: {e}); {REBUILD_HINT}") from None
    meta = dict(session.get_modelmeta().custom_metadata_map)
    made_from, these = meta.get("weights_sha256"), weights_sha256(model)
    if made_from is None or made_from != these:
        raise Int8Unavailable(
            f"{path} is stale: it was made from weights with sha256 {str(made_from)[:12]}, these are "
            f"{str(these)[:12]}; {REBUILD_HINT}")
    return Int8Graph(session, Path(path), meta)


def cpu_refuses(weight_max: int, flags: frozenset[str] | None = None) -> str | None:
    """Why ``auto`` would not take an int8 graph on this CPU, or None when it would.

    From the speed tables (docs/speed.md): with AMX, bf16 is 5-8× the fp32 engines and int8 only
    0.84× bf16 at 512×512 (0.62× at 2040×1080), so bf16 stays; with VNNI (AVX512 or AVX) int8
    sums are exact and post-training int8 ran 2.55× the bf16 engine on an AMD EPYC; on AVX2
    alone 1.74× ONNX Runtime fp32, but only a graph with 7-bit weights is free of
    ``vpmaddubsw`` saturation."""
    flags = cpu_flags() if flags is None else flags
    if "amx_bf16" in flags:
        return "this CPU has AMX, where the bf16 engine is the fastest measured"
    if "avx2" not in flags and not VNNI_FLAGS & flags:
        return "this CPU has neither AVX2 nor VNNI, where int8 has not been measured"
    if not VNNI_FLAGS & flags and weight_max > SATURATION_FREE_WEIGHT_MAX:
        return (f"this CPU has no VNNI and the graph's weights reach ±{weight_max}: its u8×s8 sums could "
                f"saturate (rebuild with --weight_max {SATURATION_FREE_WEIGHT_MAX})")
    return None


def auto_int8(model, threads: int | None = None) -> tuple[Int8Graph | None, str]:
    """What ``engine="auto"`` does about int8 (:data:`~cleanvision.options.INT8_AUTO_RULE`):
    the graph to run, or None and the reason. A graph that is there but cannot run (stale, no
    ONNX Runtime, unreadable) also warns, since its owner expects it to; no graph at all is
    the normal case and is silent."""
    if locate(model) is None:
        return None, f"no int8 graph ({INT8_FILE}) beside the weights"
    flags = cpu_flags()
    if "amx_bf16" in flags:  # decided before opening the graph: nothing to load
        return None, cpu_refuses(127, flags) or ""
    try:
        graph = open_graph(model, threads)
    except Int8Unavailable as e:
        warnings.warn(f"int8 engine not used, falling back to a float engine: {e}", stacklevel=3)
        return None, str(e)
    gate = graph.gate
    if not gate or not gate.get("passed"):
        return None, f"{graph.path} records no passed quality gate (scripts/int8_gate.py)"
    refused = cpu_refuses(graph.weight_max, flags)
    if refused:
        return None, refused
    return graph, f"{graph.path}: quality gate passed, {gate_summary(gate)}"


def gate_summary(gate: dict) -> str:
    """One line of a gate record: each set's mean Δ (worst image)."""
    return ", ".join(f"{Path(s['data']).name} {s['condition']} {s['delta']:+.3f} dB (worst {s['worst_image_delta']:+.2f})"
                     for s in gate.get("sets", []))


# --------------------------------------------------------------------------- writing the file

def check_fresh(graph: str | Path, weights: str | Path) -> None:
    """Raise :class:`~cleanvision.errors.WeightsError` unless ``graph`` records ``weights``' sha256
    (reading it needs the onnx package)."""
    from .bench.sets import sha256_file
    from .errors import WeightsError

    made_from, these = read_metadata(graph).get("weights_sha256"), sha256_file(Path(weights))
    if made_from != these:
        raise WeightsError(f"{graph} is stale: made from weights with sha256 {str(made_from)[:12]}, "
                           f"{Path(weights).name} has {these[:12]}; delete it or {REBUILD_HINT}")


def read_metadata(path: str | Path) -> dict[str, str]:
    """The graph's metadata (needs the onnx package)."""
    try:
        import onnx
    except ImportError:
        from .errors import MissingDependencyError
        from .export import INSTALL_HINT

        raise MissingDependencyError(f"reading {path} needs the onnx package: {INSTALL_HINT}") from None

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
