"""scripts/int8_ptq.py builds a real int8 graph: quantised middle layers, float first/last, close to fp32."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import ROOT, SHARED, load_script, random_dncnn, require

pytest.importorskip("onnxruntime", reason="the [onnx] extra is part of the test requirements")


PTQ_SCRIPT = ROOT / "scripts" / "int8_ptq.py"


def quantised_convs(int8: bytes) -> list[bool]:
    """For each convolution of a QDQ graph, in order: are its weights int8 (fed by DequantizeLinear)?"""
    import onnx

    graph = onnx.load_from_string(int8).graph
    produced_by = {o: n for n in graph.node for o in n.output}
    return [c.input[1] in produced_by and produced_by[c.input[1]].op_type == "DequantizeLinear"
            for c in graph.node if c.op_type == "Conv"]


def test_int8_graph_keeps_first_and_last_conv_in_float(astronaut):
    import onnxruntime as ort

    from cleanvision.export import INPUT, onnx_bytes

    ptq = load_script(PTQ_SCRIPT)
    net = random_dncnn(depth=5, width=16, pixel_unshuffle=2).eval()
    batches = ptq.calibration_batches(require(SHARED / "data" / "train" / "CBSD432"), 4, 64, 0)
    assert len(batches) == 4 and batches[0].shape == (1, 3, 64, 64)
    fp32 = onnx_bytes(net)
    int8 = ptq.quantize(fp32, batches, ["first", "last"], "MinMax")

    dequantised = quantised_convs(int8)
    assert not dequantised[0] and not dequantised[-1] and all(dequantised[1:-1]), dequantised

    x = (astronaut[:64, :96].astype(np.float32) / 255).transpose(2, 0, 1)[None]
    run = lambda model: ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {INPUT: x})[0]  # noqa: E731
    a, b = run(fp32), run(int8)
    assert 0 < np.abs(a - b).mean() < 0.02  # quantised (not identical), yet the same restoration


def test_keep_float_takes_indices_so_one_layer_can_be_quantised_alone():
    from cleanvision.export import onnx_bytes

    ptq = load_script(PTQ_SCRIPT)
    assert [ptq.conv_index(k, 5) for k in ("first", "last", "2")] == [0, 4, 2]
    with pytest.raises(ValueError, match="out of range"):
        ptq.conv_index("5", 5)
    net = random_dncnn(depth=5, width=16, pixel_unshuffle=2).eval()
    batches = ptq.calibration_batches(require(SHARED / "data" / "train" / "CBSD432"), 2, 64, 0)
    int8 = ptq.quantize(onnx_bytes(net), batches, ["0", "1", "3", "4"], "MinMax")
    assert quantised_convs(int8) == [False, False, True, False, False]


def test_markdown_names_machine_weights_and_every_row():
    ptq = load_script(PTQ_SCRIPT)
    report = {"machine": {"cpu": "AMD EPYC", "isa": {"amx_int8": False, "avx2": True}, "torch_threads": 1,
                          "onnxruntime": "1.32.0"},
              "weights_sha256": "29c8dd6b968f" + "0" * 52, "command": "python scripts/int8_ptq.py",
              "calibration": {"data": "/x/CBSD432", "images": 32, "method": "MinMax", "keep_float": ["first", "last"]},
              "seconds_512": {"onnxruntime fp32": 2.0, "onnxruntime int8": 1.0},
              "gops_512": {"onnxruntime fp32": 55.0, "onnxruntime int8": 110.0},
              "peak_gops": {"fp32": 72.0, "int8": 165.0},
              "percent_of_peak": {"onnxruntime fp32": 76.4, "onnxruntime int8": 66.7},
              "quality": [{"data": "/x/PolyU", "condition": "real", "images": 100, "psnr_fp32": 36.5,
                           "psnr_int8": 34.6, "delta": -1.9, "worst_image_delta": -6.4}],
              "passes_gate": False,
              "per_layer": {"images_per_gate_set": 16, "layers": [{"conv": 1, "delta": {"/x/PolyU": -0.679}}]}}
    md = ptq.markdown(report)
    assert "AMD EPYC (avx2)" in md and "`29c8dd6b968f`" in md and "CBSD432" in md
    assert "| onnxruntime int8 | 1.000 | 2.00 | 110 | 67 |" in md
    assert "fp32 72 GFLOP/s (torch), int8 165 GOP/s" in md and "at most 2.3× fp32" in md
    assert "| PolyU `real` | 100 | 36.500 | 34.600 | -1.900 | -6.40 |" in md
    assert "Passes the 0.05 dB gate: no." in md and "| 1 | -0.679 |" in md
