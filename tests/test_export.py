"""ONNX export (``cleanvision export --onnx``) and the ``onnxruntime`` engine, against the
reference engine on a real photo: within 1/255, at two sizes, tiled, grey and RGBA."""
from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from cleanvision import CleanVisionError, Denoiser
from cleanvision import export as export_mod
from cleanvision.cli import main
from cleanvision.errors import MissingDependencyError, OutputExistsError
from cleanvision.noise import add_gaussian_noise

TOL = 1 / 255


@pytest.fixture(scope="module")
def reference():
    return Denoiser.from_pretrained(engine="reference")


@pytest.fixture(scope="module")
def onnx_engine():
    return Denoiser.from_pretrained(engine="onnxruntime")


@pytest.fixture(scope="module")
def noisy(astronaut):
    """A real photo with real damage: astronaut, Gaussian σ 25, as floats in [0, 1]."""
    return add_gaussian_noise(astronaut[40:280, 120:400], 25, rng=0).astype(np.float32) / 255


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "dncnn.onnx"
    assert main(["export", "--onnx", str(path)]) == 0
    return path


def test_export_records_opset_and_what_a_user_needs(exported, reference, capsys):
    proto = onnx.load(str(exported))
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    model = reference.model
    assert meta["opset"] == str(export_mod.DEFAULT_OPSET)
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [export_mod.DEFAULT_OPSET]
    assert json.loads(meta["config"]) == {"channels": 3, "depth": model.depth, "width": model.width,
                                          "pixel_unshuffle": model.scale, "batch_norm": False, "noise_map": 1,
                                          "phase_correction": True}
    assert "noise level at each pixel" in meta["noise_map"] and "estimates it" in meta["noise_map"]
    assert meta["pixel_unshuffle"] == str(model.scale) and meta["receptive_radius"] == str(model.receptive_radius)
    assert meta["cleanvision_version"] and meta["source"] == "shipped"
    assert "any H and W" in meta["input"] and "multiples" in meta["input"]  # padded inside, not by the caller
    assert not any(n.op_type == "BatchNormalization" for n in proto.graph.node)  # folded
    assert [v.name for v in proto.graph.input] == ["image", "noise_map"]
    for value, c in ((proto.graph.input[0], 3), (proto.graph.input[1], 1)):
        dims = value.type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims] == ["batch", c, "height", "width"]
    dims = [d.dim_param or d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim]
    assert proto.graph.output[0].name == "restored" and dims[0] == "batch" and dims[2:] == ["height", "width"]


@pytest.mark.parametrize("size", [(240, 280), (130, 98)])
def test_exported_file_matches_reference_engine(exported, reference, noisy, size):
    """Two sizes through one file (dynamic H and W), and a batch of two (dynamic N), each crop
    with the noise level the Denoiser estimates for it (the graph takes the map, not the estimator)."""
    h, w = size
    crops = [noisy[:h, :w], noisy[-h:, -w:]]
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    x = np.stack([c.transpose(2, 0, 1) for c in crops])
    level = np.stack([np.full((1, h, w), reference.estimate_noise_level(c) / 255, np.float32) for c in crops])
    out = np.clip(session.run(None, {"image": x, "noise_map": level})[0], 0, 1)
    assert out.shape == x.shape
    for got, crop in zip(out, crops):
        want = reference(crop)
        assert np.abs(got.transpose(1, 2, 0) - want).max() <= TOL
        assert np.abs(want - crop).mean() > 10 * TOL  # it did restore something


@pytest.mark.parametrize("size", [(1, 1), (1, 2), (2, 1), (101, 101), (37, 50)])
def test_exported_graph_takes_any_size(exported, reference, astronaut, size):
    """Sizes that are not multiples of the pixel-unshuffle factor, down to one pixel, go through
    the exported file itself in plain ONNX Runtime (no Denoiser around it): the graph pads by
    edge replication and crops back, as DnCNN.forward does, to within 1 grey level."""
    h, w = size
    crop = add_gaussian_noise(astronaut[211:211 + h, 137:137 + w], 25, rng=7)  # a real photo, real noise
    x = np.ascontiguousarray(crop.transpose(2, 0, 1)[None], dtype=np.float32) / 255
    level = np.full((1, 1, h, w), 25 / 255, np.float32)
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": x, "noise_map": level})[0]
    with torch.inference_mode():
        want = reference.model(torch.from_numpy(x), torch.from_numpy(level)).numpy()
    assert got.shape == x.shape
    assert np.abs(got - want).max() <= TOL
    if h * w > 100:
        assert np.abs(want - x).mean() > 10 * TOL / 3  # it did restore something


def test_export_refuses_to_overwrite(tmp_path, reference, capsys):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"keep me")
    assert main(["export", "--onnx", str(path)]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and path.read_bytes() == b"keep me"
    assert "--overwrite" in err and "overwrite=True" not in err  # the command line speaks in flags ...
    with pytest.raises(OutputExistsError) as e:
        export_mod.export_onnx(reference.model, path)
    assert "overwrite=True" in str(e.value) and "--overwrite" not in str(e.value)  # ... the library in arguments
    assert main(["export", "--onnx", str(path), "--overwrite", "--opset", "13"]) == 0
    assert "opset: 13" in capsys.readouterr().out
    assert {p.key: p.value for p in onnx.load(str(path)).metadata_props}["opset"] == "13"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary file left


def test_onnxruntime_engine_matches_reference_on_a_photo(onnx_engine, reference, astronaut):
    assert onnx_engine.engine == "onnxruntime" and onnx_engine.device.type == "cpu"
    opts = onnx_engine._session.get_session_options()
    assert opts.intra_op_num_threads == torch.get_num_threads()
    img = add_gaussian_noise(astronaut[101:302, 57:360], 25, rng=1)  # 201×303: odd, padded to the grid
    got, want = onnx_engine(img), reference(img)
    assert got.dtype == np.uint8 and got.shape == img.shape
    assert np.abs(got.astype(int) - want).max() <= 1  # 1/255


def test_onnxruntime_engine_tiled_grey_and_rgba(reference, astronaut, monkeypatch):
    """Small tiles (the seams must vanish), a grey image through the colour model, RGBA with
    its alpha untouched; the ONNX session is built once for all of them."""
    exports = []
    real = export_mod.onnx_bytes
    monkeypatch.setattr(export_mod, "onnx_bytes", lambda *a, **k: exports.append(1) or real(*a, **k))
    tiled = Denoiser.from_pretrained(engine="onnxruntime", tile_size=64)
    colour = add_gaussian_noise(astronaut[200:390, 180:350], 20, rng=2)
    calls = []
    got = tiled(colour, progress=lambda i, n: calls.append(n))
    assert calls[-1] > 4  # really tiled
    assert np.abs(got.astype(int) - reference(colour)).max() <= 1
    grey = add_gaussian_noise((astronaut[:150, 200:330].mean(axis=2)).astype(np.uint8), 20, rng=3)
    assert grey.ndim == 2
    assert np.abs(tiled(grey).astype(int) - reference(grey)).max() <= 1
    alpha = np.linspace(0, 255, colour.shape[1]).astype(np.uint8)[None].repeat(colour.shape[0], 0)
    rgba = np.dstack([colour, alpha])
    out = tiled(rgba)
    assert out.shape == rgba.shape and np.array_equal(out[..., 3], alpha)
    assert np.abs(out[..., :3].astype(int) - reference(colour)).max() <= 1
    assert exports == [1]


def test_a_prebuilt_session_gets_the_same_tiling(reference, astronaut, exported):
    """A session built elsewhere (here from a graph made for tiles: the phase correction left to
    the assembled image) runs behind the Denoiser: every tile goes through it, and the restored
    photo matches the reference engine."""
    model = Denoiser.from_pretrained(engine="fp32").model
    inner = export_mod.ort_session(model, graph=export_mod.onnx_bytes(model, whole_image=False))
    shapes = []

    class Recording:
        def run(self, outputs, feeds):
            shapes.append(feeds["image"].shape)
            return inner.run(outputs, feeds)

    den = Denoiser(model, engine="onnxruntime", session=Recording(), tile_size=96)
    img = add_gaussian_noise(astronaut[:160, :200], 25, rng=5)
    got = den(img)
    assert len(shapes) > 1 and all(s[:2] == (1, 3) for s in shapes)  # tiled, every tile through it
    assert np.abs(got.astype(int) - reference(img)).max() <= 1
    with pytest.raises(ValueError, match="onnxruntime"):
        Denoiser(model, engine="fp32", session=inner)


def test_cli_denoise_with_the_onnxruntime_engine(tmp_path, astronaut, capsys):
    from cleanvision.image_io import read_image, write_image

    src = tmp_path / "in" / "a.png"
    write_image(src, add_gaussian_noise(astronaut[:96, :128], 25, rng=4))
    assert main(["denoise", str(src), "-o", str(tmp_path / "out"), "--engine", "onnxruntime"]) == 0
    assert read_image(tmp_path / "out" / "a.png").shape == (96, 128, 3)
    capsys.readouterr()
    assert main(["denoise", str(src), "-o", str(tmp_path / "gpu"), "--engine", "onnxruntime", "--device", "cuda"]) == 1
    assert "--engine onnxruntime runs on the CPU" in capsys.readouterr().err  # in flags, not engine="..."


def test_missing_onnxruntime_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'cleanvision\[onnx\]'") as e:
        Denoiser.from_pretrained(engine="onnxruntime")
    assert isinstance(e.value, CleanVisionError)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(MissingDependencyError, match="onnx"):
        export_mod.onnx_bytes(Denoiser.from_pretrained(engine="fp32").model)


def test_export_help_is_there(capsys):
    with pytest.raises(SystemExit) as e:
        main(["export", "--help"])
    assert e.value.code == 0 and "--onnx OUT.onnx" in capsys.readouterr().out
