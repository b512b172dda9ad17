"""scripts/int8_ptq.py builds a real int8 graph: quantised middle layers, float first/last, close to fp32."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from conftest import ROOT, SHARED, random_dncnn, require

pytest.importorskip("onnxruntime", reason="the [onnx] extra is part of the test requirements")


def load_script():
    spec = importlib.util.spec_from_file_location("int8_ptq", ROOT / "scripts" / "int8_ptq.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_int8_graph_keeps_first_and_last_conv_in_float(astronaut):
    import onnx
    import onnxruntime as ort

    from cleanvision.export import INPUT, onnx_bytes

    ptq = load_script()
    net = random_dncnn(depth=5, width=16, pixel_unshuffle=2).eval()
    batches = ptq.calibration_batches(require(SHARED / "data" / "train" / "CBSD432"), 4, 64, 0)
    assert len(batches) == 4 and batches[0].shape == (1, 3, 64, 64)
    fp32 = onnx_bytes(net)
    int8 = ptq.quantize(fp32, batches, ["first", "last"], "MinMax")

    graph = onnx.load_from_string(int8).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    produced_by = {o: n for n in graph.node for o in n.output}
    dequantised = [produced_by.get(c.input[1]) is not None and produced_by[c.input[1]].op_type == "DequantizeLinear"
                   for c in convs]
    assert not dequantised[0] and not dequantised[-1] and all(dequantised[1:-1]), dequantised

    x = (astronaut[:64, :96].astype(np.float32) / 255).transpose(2, 0, 1)[None]
    run = lambda model: ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {INPUT: x})[0]  # noqa: E731
    a, b = run(fp32), run(int8)
    assert 0 < np.abs(a - b).mean() < 0.02  # quantised (not identical), yet the same restoration
