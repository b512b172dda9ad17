"""What machine this is, for reports (training info, benchmarks, load tests) and engine choice."""
from __future__ import annotations

import importlib.util
import platform
from functools import lru_cache
from pathlib import Path

#: The instruction-set extensions that decide which engine is fast here, in the order reports list them.
ISA_FLAGS = ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512f", "avx_vnni", "avx2", "fma")


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where the OS does not say."""
    return frozenset((_cpuinfo_field("flags") or "").split())


def isa_summary() -> dict[str, bool]:
    """Which of :data:`ISA_FLAGS` this CPU has: what a speed figure depends on."""
    flags = cpu_flags()
    return {f: f in flags for f in ISA_FLAGS}


def cpu_native_bf16() -> bool:
    """bfloat16 matrix units (AMX) or instructions (AVX512-BF16); without them bf16 is emulated and slow."""
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def ort_available() -> bool:
    """Whether the ``onnxruntime`` engine can be built here (onnx and onnxruntime installed);
    asks the import system without importing either, so ``--help`` stays instant."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
