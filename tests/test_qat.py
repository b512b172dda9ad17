"""Quantisation-aware training: the fake-quantised network is what ONNX Runtime's int8 graph
computes, and scripts/qat.py is one resumable command that writes a model folder with that graph."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import ROOT, load_script, random_dncnn
from int8_models import run_qat

pytest.importorskip("onnxruntime", reason="the [onnx] extra is part of the test requirements")


def _fused_ops(graph: bytes, tmp_path) -> dict[str, int]:
    """Op counts of the graph as ONNX Runtime optimises it (QLinearConv: the fused int8 convolutions)."""
    import onnx
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(str(tmp_path / "optimised.onnx")).graph.node]
    return {op: ops.count(op) for op in set(ops)}


@pytest.mark.parametrize("noise_map", [0, 1])
@pytest.mark.parametrize("float_last,learn_weight_scale", [(True, False), (False, False), (True, True)])
def test_onnxruntime_int8_computes_what_training_saw(astronaut, tmp_path, noise_map, float_last, learn_weight_scale):
    """On a real noisy photo, ONNX Runtime's int8 graph and the fake-quantised torch model agree
    to within rounding ties (at most one step of the output's 8-bit grid, on average 1/100 of a
    grey level), and every quantised convolution became a fused int8 one (QLinearConv)."""
    import onnxruntime as ort

    from cleanvision.noise import add_gaussian_noise
    from cleanvision.quantize import QuantSpec, int8_onnx_bytes, prepare_qat, quant_convs

    torch.manual_seed(0)
    net = random_dncnn(depth=5, width=16, pixel_unshuffle=2, noise_map=noise_map).eval()
    noisy = add_gaussian_noise(astronaut[100:196, 150:278], 25, rng=0)
    x = torch.from_numpy(noisy).permute(2, 0, 1)[None].float() / 255
    level = torch.full((1, 1, 96, 128), 25 / 255) if noise_map else None
    qat = prepare_qat(net, QuantSpec(float_last=float_last, learn_weight_scale=learn_weight_scale), [(x, level)])
    if learn_weight_scale:  # a learned scale that clips: the largest weights saturate at ±127
        for q in quant_convs(qat)[:-1]:
            q.learned_weight_scale.data *= 0.7
    qat.eval()
    graph = int8_onnx_bytes(qat)
    feeds = {"image": x.numpy()} | ({"noise_map": level.numpy()} if noise_map else {})
    got = ort.InferenceSession(graph, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    with torch.no_grad():
        want = (x - qat.network_noise(x, level)).numpy()
        plain = net(x, level).numpy()
    step = 1.0 if float_last else float(quant_convs(qat)[-1].output_quant.effective_scale().detach()) * 255
    diff = np.abs(got - want) * 255
    assert diff.max() <= step + 1e-3 and diff.mean() < 0.01, (diff.max(), diff.mean())
    assert np.abs(got - plain).mean() * 255 > 0.001  # quantised: not the float model
    ops = _fused_ops(graph, tmp_path)
    assert ops.get("QLinearConv", 0) == 5 - float_last, ops
    assert ops.get("Conv", 0) == int(float_last), ops


def test_weights_are_symmetric_per_channel_and_7_bit_on_request():
    from cleanvision.quantize import QuantSpec, prepare_qat, quant_convs, quantise_weight

    net = random_dncnn(depth=4, width=8, pixel_unshuffle=2)
    for weight_max in (127, 64):
        qat = prepare_qat(net, QuantSpec(weight_max=weight_max))
        q, s = quantise_weight(quant_convs(qat)[1].weight, weight_max)
        assert q.dtype == torch.int8 and int(q.abs().max()) == weight_max  # each channel's largest weight
        assert torch.equal(q.abs().flatten(1).amax(1), torch.full((8,), weight_max, dtype=torch.int8))
        assert s.shape == (8,)
    with pytest.raises(ValueError, match="weight_max"):
        QuantSpec(weight_max=128)


def test_qat_resumes_at_the_saved_step_and_writes_a_model_folder(tmp_path):
    """Four steps with a checkpoint every two, then the same command to six steps with
    --resume_from_checkpoint latest: it continues at step 4 (two steps run), keeps the run's own
    quantisation settings, and the folder is the float model plus an int8 graph recording the
    float weights' sha256."""
    from cleanvision.bench.sets import sha256_file
    from cleanvision.int8 import INT8_FILE, read_metadata

    src = tmp_path / "float"
    random_dncnn(depth=4, width=8, pixel_unshuffle=2).save_pretrained(src)
    out = tmp_path / "qat"
    first = run_qat(src, out, "--max_train_steps", "4", "--checkpointing_steps", "2", "--validation_steps", "2")
    assert first["steps"] == 4 and first["steps_this_run"] == 4
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    again = run_qat(src, out, "--max_train_steps", "6", "--checkpointing_steps", "2", "--validation_steps", "2",
                    "--resume_from_checkpoint", "latest", "--weight_max", "64")
    assert again["steps"] == 6 and again["steps_this_run"] == 2
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-4", "checkpoint-6"]
    assert (out / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()
    meta = read_metadata(out / INT8_FILE)
    assert meta["weights_sha256"] == sha256_file(src / "model.safetensors")
    assert json.loads(meta["quantization"]) == {"weight_max": 127, "float_last": True,
                                                "learn_weight_scale": False,
                                                "learn_activation_scale": True, "equalise": 0.5}  # the run's own
    assert json.loads(meta["qat"])["steps"] == 6 and "quality_gate" not in meta
    assert json.loads((out / "qat_info.json").read_text())["steps"] == 6


def test_a_resumed_run_starts_from_the_checkpoint_not_the_float_model(tmp_path):
    """Resuming a finished run (step 4 of 4) trains nothing and writes the same int8 graph:
    weights and learned activation scales come back from the checkpoint."""
    from cleanvision.int8 import INT8_FILE

    src = tmp_path / "float"
    random_dncnn(depth=4, width=8, pixel_unshuffle=2).save_pretrained(src)
    out = tmp_path / "qat"
    run_qat(src, out, "--max_train_steps", "4", "--checkpointing_steps", "4", "--learning_rate", "1e-2")
    first = (out / INT8_FILE).read_bytes()
    again = run_qat(src, out, "--max_train_steps", "4", "--resume_from_checkpoint", "latest")
    assert again["steps_this_run"] == 0
    assert _without_metadata((out / INT8_FILE).read_bytes()) == _without_metadata(first)


def _without_metadata(graph: bytes) -> bytes:
    import onnx

    proto = onnx.load_from_string(graph)
    del proto.metadata_props[:]
    return proto.SerializeToString()


def test_distillation_trains_towards_the_float_model_too(tmp_path):
    """--distill W mixes the float model's own prediction into the target; recorded with the run."""
    src = tmp_path / "float"
    random_dncnn(depth=4, width=8, pixel_unshuffle=2).save_pretrained(src)
    info = run_qat(src, tmp_path / "kd", "--max_train_steps", "2", "--checkpointing_steps", "2", "--distill", "0.5")
    assert info["steps"] == 2 and info["distill"] == 0.5
    assert (tmp_path / "kd" / "model_int8.onnx").is_file()


def test_fixed_activation_ranges_stay_at_their_calibrated_values_while_weights_train(tmp_path):
    """--fixed_activation_ranges: the ranges the calibration chose reach the graph unchanged
    after training (learned ranges move), and the run records the choice."""
    import onnx
    from onnx import numpy_helper

    from cleanvision.int8 import INT8_FILE, read_metadata

    src = tmp_path / "float"
    random_dncnn(depth=4, width=8, pixel_unshuffle=2).save_pretrained(src)

    def input_scales(out, steps: int, *flags) -> list[float]:
        run_qat(src, out, "--max_train_steps", str(steps), "--checkpointing_steps", "3", "--learning_rate", "1e-2",
                *flags)
        g = onnx.load(str(out / INT8_FILE)).graph
        return [float(numpy_helper.to_array(t)) for t in sorted(g.initializer, key=lambda t: t.name)
                if t.name.endswith("_x_scale")]

    calibrated = input_scales(tmp_path / "zero", 0)
    fixed = input_scales(tmp_path / "fixed", 3, "--fixed_activation_ranges")
    learned = input_scales(tmp_path / "learned", 3)
    assert len(calibrated) == 4 and calibrated[0] == pytest.approx(1 / 255)
    assert fixed == pytest.approx(calibrated, rel=1e-6)
    assert learned[1:] != pytest.approx(calibrated[1:], rel=1e-3)
    assert json.loads(read_metadata(tmp_path / "fixed" / INT8_FILE)["quantization"])["learn_activation_scale"] is False


def test_large_damage_weight_weighs_impulse_pixels_in_the_loss(astronaut, tmp_path):
    """--large_damage_weight W: pixels an impulse or stroke damaged (more than 64 grey levels)
    count W times, the rest once; W = 1 is the plain MSE. Recorded with the run."""
    from cleanvision.noise import add_salt_pepper_noise

    qat = load_script(ROOT / "scripts" / "qat.py")
    clean = astronaut[:96, :96]
    noisy = add_salt_pepper_noise(clean, 0.1, np.random.default_rng(0))
    c = torch.from_numpy(clean).permute(2, 0, 1)[None].float() / 255
    x = torch.from_numpy(noisy).permute(2, 0, 1)[None].float() / 255
    w = qat.damage_weights(x, c, 5.0)
    hit = (x - c).abs().amax(dim=1) > qat.LARGE_DAMAGE
    assert 0.03 < hit.float().mean() < 0.12  # the impulses, not the whole photo
    assert torch.equal(w[:, 0] == 5.0, hit) and torch.all((w == 5.0) | (w == 1.0))
    err = torch.rand_like(x)
    assert qat.weighted_mse(err, torch.zeros_like(err), torch.ones_like(w)) == pytest.approx(float(err.pow(2).mean()))
    big = torch.where(hit[:, None], err * 10, err)  # errors on the impulses weigh more with W > 1
    assert qat.weighted_mse(big, 0 * big, w) > qat.weighted_mse(big, 0 * big, torch.ones_like(w))

    src = tmp_path / "float"
    random_dncnn(depth=4, width=8, pixel_unshuffle=2).save_pretrained(src)
    info = run_qat(src, tmp_path / "w", "--max_train_steps", "2", "--checkpointing_steps", "2",
                   "--large_damage_weight", "4")
    assert info["steps"] == 2 and info["large_damage_weight"] == 4.0


def test_equalised_activations_keep_the_float_output_and_even_out_the_channels(astronaut):
    """On a photo with impulses, equalising the shipped model's channels leaves its predicted noise
    as it was (float rounding) while each activation's channels come to span nearly the same range,
    so the one uint8 scale per tensor gives the narrow channels more of its steps."""
    from torch import nn

    from cleanvision.inference import load_model
    from cleanvision.noise import add_salt_pepper_noise
    from cleanvision.quantize import QuantSpec, equalise_activations

    noisy = add_salt_pepper_noise(astronaut[:128, 128:256], 0.10, rng=0)
    x = torch.from_numpy(noisy).permute(2, 0, 1)[None].float() / 255
    model = load_model(ROOT / "cleanvision" / "weights" / "default").float().fuse()

    def spreads() -> tuple[torch.Tensor, list[float]]:
        """The predicted noise, and per body convolution after the first: median over channels of
        its input's largest value, as a share of the largest over all channels."""
        peaks = []
        hooks = [c.register_forward_hook(lambda m, inp, o: peaks.append(inp[0].amax(dim=(0, 2, 3))))
                 for c in model.body if isinstance(c, nn.Conv2d)]
        with torch.no_grad():
            out = model.network_noise(x, None)
        for h in hooks:
            h.remove()
        return out, [float(p.median() / p.max()) for p in peaks[1:]]

    before, spread_before = spreads()
    gains = equalise_activations(model, [(x, None)], strength=1.0)
    after, spread_after = spreads()
    assert float((after - before).abs().max()) * 255 < 1e-3
    assert all(float(g.min()) >= 1.0 and float(g.max()) <= 8.0 for g in gains)
    assert max(spread_before) < 0.8, spread_before
    assert all(a > b + 0.1 for a, b in zip(spread_after, spread_before)), (spread_before, spread_after)
    assert float(np.median(spread_after)) > 0.95, spread_after  # the rest: channels that needed more than 8×
    with pytest.raises(ValueError, match="equalise"):
        QuantSpec(equalise=1.5)
