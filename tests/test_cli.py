"""The cleanvision command: denoise and degrade on real files, bad inputs, no silent overwrites."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cleanvision import Denoiser
from cleanvision.cli import main
from cleanvision.image_io import read_image, write_image
from cleanvision.metrics import psnr_uint8
from cleanvision.noise import add_gaussian_noise
from cleanvision.provenance import RECORD_NAME

from corpus import build


@pytest.fixture()
def noisy_dir(tmp_path, astronaut):
    d = tmp_path / "in"
    write_image(d / "astronaut.png", add_gaussian_noise(astronaut, 25, rng=0))
    return d


def test_denoise_raises_psnr_and_keeps_going_past_bad_files(tmp_path, noisy_dir, astronaut, capsys):
    """Acceptance (issue 2): +5 dB on astronaut σ=25; bad files named, others still processed."""
    (noisy_dir / "notes.png").write_text("not an image")
    (noisy_dir / "empty.png").write_bytes(b"")
    good = (noisy_dir / "astronaut.png").read_bytes()
    (noisy_dir / "truncated.png").write_bytes(good[: len(good) // 3])
    empty_folder = tmp_path / "nothing"
    empty_folder.mkdir()
    out = tmp_path / "out"
    code = main(["denoise", str(noisy_dir), str(empty_folder), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert f"model shipped, {Denoiser.from_pretrained().engine} engine on cpu" in err  # which engine ran
    restored = read_image(out / "astronaut.png")
    noisy = read_image(noisy_dir / "astronaut.png")
    assert psnr_uint8(astronaut, restored) >= psnr_uint8(astronaut, noisy) + 5
    failures = [l.strip() for l in err.splitlines() if l.startswith("  ")]
    assert len(failures) == 4
    for name in ("notes.png", "empty.png", "truncated.png", "nothing"):
        assert sum(name in l for l in failures) == 1, err
    assert sorted(p.name for p in out.iterdir()) == [RECORD_NAME, "astronaut.png"]


def test_denoise_never_overwrites_and_skips_what_is_there(tmp_path, noisy_dir, capsys):
    """Issue 11: a second run over the same folder exits 0, changes nothing, reports the skip."""
    out = tmp_path / "out"
    assert main(["denoise", str(noisy_dir), "-o", str(out)]) == 0
    assert f"1 written to {out}" in capsys.readouterr().err
    first = (out / "astronaut.png").read_bytes()
    write_image(out / "astronaut.png", np.zeros((4, 4), np.uint8), overwrite=True)
    kept = (out / "astronaut.png").read_bytes()
    assert main(["denoise", str(noisy_dir), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"0 written to {out}, 1 skipped (already made with these settings)" in err and "failed" not in err, err
    assert (out / "astronaut.png").read_bytes() == kept
    assert main(["denoise", str(noisy_dir), "-o", str(out), "--overwrite"]) == 0
    assert (out / "astronaut.png").read_bytes() == first
    # skips and failures together: exit 1 for the failure, the skip still counted as a skip
    (noisy_dir / "broken.png").write_text("not an image")
    assert main(["denoise", str(noisy_dir), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "0 written" in err and "1 skipped" in err and "1 failed" in err and "broken.png" in err
    # the output folder is the input folder: refuse to replace the input, and say where outputs go
    assert main(["denoise", str(noisy_dir / "astronaut.png"), "-o", str(noisy_dir)]) == 1
    err = capsys.readouterr().err
    assert "is one of the inputs" in err and f"0 written to {noisy_dir}" in err, err


def test_written_files_get_the_umask_mode(tmp_path, noisy_dir):
    """Issue 11: images and saved weights get what open() gives, not mkstemp's 0600."""
    import stat

    from cleanvision import DnCNN

    old = os.umask(0o022)
    try:
        assert main(["denoise", str(noisy_dir), "-o", str(tmp_path / "out")]) == 0
        DnCNN(depth=3, width=4).save_pretrained(tmp_path / "model")
        os.umask(0o077)
        assert main(["denoise", str(noisy_dir), "-o", str(tmp_path / "private")]) == 0
    finally:
        os.umask(old)
    assert stat.filemode((tmp_path / "out" / "astronaut.png").stat().st_mode) == "-rw-r--r--"
    assert stat.filemode((tmp_path / "model" / "model.safetensors").stat().st_mode) == "-rw-r--r--"
    assert stat.filemode((tmp_path / "private" / "astronaut.png").stat().st_mode) == "-rw-------"


def test_strength_zero_copies_and_half_blends(tmp_path, noisy_dir, capsys):
    src = read_image(noisy_dir / "astronaut.png")
    assert main(["denoise", str(noisy_dir), "-o", str(tmp_path / "s0"), "--strength", "0"]) == 0
    np.testing.assert_array_equal(read_image(tmp_path / "s0" / "astronaut.png"), src)
    assert main(["denoise", str(noisy_dir), "-o", str(tmp_path / "s1")]) == 0
    assert main(["denoise", str(noisy_dir), "-o", str(tmp_path / "s5"), "--strength", "0.5"]) == 0
    full = read_image(tmp_path / "s1" / "astronaut.png").astype(int)
    half = read_image(tmp_path / "s5" / "astronaut.png").astype(int)
    lo, hi = np.minimum(src, full), np.maximum(src, full)
    assert ((half >= lo - 1) & (half <= hi + 1)).all()  # between input and full, to rounding
    assert 0 < np.abs(half - src).mean() < np.abs(full - src).mean()
    for bad in ("1.5", "-0.1", "nan", "strong"):
        with pytest.raises(SystemExit) as e:
            main(["denoise", str(noisy_dir), "-o", str(tmp_path / "x"), "--strength", bad])
        assert e.value.code == 2
    assert "--strength" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_denoise_keeps_bit_depth_alpha_and_odd_files(tmp_path, capsys):
    cases = build(tmp_path / "corpus")
    out = tmp_path / "out"
    code = main(["denoise", str(tmp_path / "corpus"), "-o", str(out), "--suffix", "_restored"])
    err = capsys.readouterr().err
    assert code == 1
    for c in cases:
        dest = out / f"{Path(c.name).stem if c.name != 'non-utf8 name' else c.path.stem}_restored.png"
        if c.error:
            assert not dest.exists() and c.path.name in err
        else:
            if c.dtype is np.float32:  # PNG cannot hold floats: written as TIFF instead
                dest = dest.with_suffix(".tif")
            img = read_image(dest)
            assert img.shape == c.shape and img.dtype == c.dtype, c.name
    assert f"{sum(1 for c in cases if c.error)} failed" in err
    assert "1 written without part of the input:\n  " in err and "animated.gif: 2 frames" in err
    src = read_image(tmp_path / "corpus" / "rgba.png")
    assert np.array_equal(read_image(out / "rgba_restored.png")[..., 3], src[..., 3])


def test_outputs_keep_the_inputs_colour_profile_and_exif(tmp_path, astronaut, capsys):
    """A phone photo's ICC profile and EXIF go into the restored (and the degraded) PNG; a TIFF
    output, which cannot hold them here, is listed under the summary."""
    from PIL import Image, ImageCms

    from cleanvision.image_io import photo_metadata

    exif = Image.Exif()
    exif[0x0110] = "Phone 9"
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / "in" / "phone.jpg"
    src.parent.mkdir()
    Image.fromarray(astronaut[:96, :128]).save(src, quality=95, icc_profile=profile, exif=exif)
    meta = photo_metadata(src)
    assert meta.icc_profile == profile and meta.exif
    assert main(["denoise", str(src), "-o", str(tmp_path / "out")]) == 0
    assert photo_metadata(tmp_path / "out" / "phone.png") == meta
    assert main(["degrade", str(src), "-o", str(tmp_path / "noisy"), "--noise", "gaussian=25"]) == 0
    assert [photo_metadata(p) for p in (tmp_path / "noisy").glob("*.png")] == [meta]
    capsys.readouterr()
    assert main(["denoise", str(src), "-o", str(tmp_path / "tif"), "--format", "tif"]) == 0
    err = capsys.readouterr().err
    assert "1 written without part of the input:" in err and "phone.tif: not kept: its RGB colour profile" in err


def test_a_phone_folder_heic_restored_and_what_it_cannot_read_listed(tmp_path, astronaut, capsys):
    """A folder as a phone or camera leaves it: a noisy HEIC photo is restored (PSNR up), and a
    RAW file and a note, which are not images it reads, are listed rather than skipped silently."""
    from PIL import Image

    folder = tmp_path / "DCIM"
    folder.mkdir()
    clean = astronaut[128:320, 96:352]
    Image.fromarray(add_gaussian_noise(clean, 25, rng=1)).save(folder / "IMG_0001.HEIC", quality=95)
    Image.fromarray(clean[::4, ::4]).save(folder / "IMG_0002.CR2", format="TIFF")
    (folder / "notes.txt").write_text("beach, day 2")
    (folder / ".DS_Store").write_bytes(b"\0")
    out = tmp_path / "out"
    assert main(["denoise", str(folder), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert ("2 file(s) in the input folders are not images it reads, left out: "
            "1 .cr2 (camera RAW: develop into TIFF or PNG first), 1 .txt") in err, err
    noisy = read_image(folder / "IMG_0001.HEIC")
    assert psnr_uint8(clean, read_image(out / "IMG_0001.png")) >= psnr_uint8(clean, noisy) + 5
    assert sorted(p.name for p in out.iterdir()) == [RECORD_NAME, "IMG_0001.png"]
    (folder / "IMG_0001.HEIC").unlink()
    assert main(["denoise", str(folder), "-o", str(tmp_path / "none")]) == 1
    assert "no images in this folder" in (err := capsys.readouterr().err) and "it holds 1 .cr2 (camera RAW" in err


def test_float_tiff_roundtrip(tmp_path):
    img = (np.random.default_rng(0).random((40, 50, 3)) * 0.5 + 0.25).astype(np.float32)
    write_image(tmp_path / "in" / "f.tif", img)
    assert main(["denoise", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--format", "tif"]) == 0
    out = read_image(tmp_path / "out" / "f.tif")
    assert out.dtype == np.float32 and out.shape == img.shape


def test_tif_output_is_read_by_plain_tifffile(tmp_path, noisy_dir):
    """Issue 11: deflate without a predictor, so tifffile needs no imagecodecs (and Pillow reads it)."""
    import tifffile
    from PIL import Image

    grey16 = (np.arange(40 * 50).reshape(40, 50) * 20).astype(np.uint16)
    write_image(noisy_dir / "grey16.png", grey16)
    assert main(["denoise", str(noisy_dir), "-o", str(tmp_path / "out"), "--format", "tif"]) == 0
    for name in ("astronaut.tif", "grey16.tif"):
        path = tmp_path / "out" / name
        with tifffile.TiffFile(path) as t:
            assert t.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
            assert t.pages[0].predictor == tifffile.PREDICTOR.NONE
            np.testing.assert_array_equal(t.asarray(), read_image(path))
        with Image.open(path) as im:
            np.testing.assert_array_equal(np.asarray(im), read_image(path))


def test_degrade_is_reproducible_and_records_parameters(tmp_path, astronaut, capsys, make_bench):
    write_image(tmp_path / "clean" / "0001.png", astronaut)
    write_image(tmp_path / "clean" / "0002.png", astronaut[::2, ::2])
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["degrade", str(tmp_path / "clean"), "-o", str(a), "--seed", "3"]) == 0
    assert main(["degrade", str(tmp_path / "clean" / "0002.png"), str(tmp_path / "clean" / "0001.png"),
                 "-o", str(b), "--seed", "3"]) == 0
    for name in ("0001_noisy.png", "0002_noisy.png"):  # DIV2K_Noisy naming, independent of order
        assert np.array_equal(read_image(a / name), read_image(b / name))
    manifest = json.loads((a / "degradations.json").read_text())
    # --noise mixed with seed 0 makes exactly the frozen benchmark's "mixed" images
    d = tmp_path / "d"
    write_image(tmp_path / "d_in" / "0003.png", astronaut)  # its draw has Gaussian and speckle noise
    assert main(["degrade", str(tmp_path / "d_in"), "-o", str(d)]) == 0
    bench = make_bench.degrade(astronaut[..., ::-1], "mixed", make_bench.rng_for(0, "mixed", "0003.png"))[0]
    assert np.array_equal(read_image(d / "0003_noisy.png"), bench[..., ::-1])
    assert set(manifest) == {"0001_noisy.png", "0002_noisy.png"}
    assert 1 <= len(set(manifest["0001_noisy.png"]["noise"]) & {"sigma", "salt_pepper", "speckle_var", "scribbles"}) <= 3
    c = tmp_path / "c"
    assert main(["degrade", str(tmp_path / "clean"), "-o", str(c), "--noise", "gaussian=25", "--seed", "3"]) == 0
    diff = read_image(c / "0001_noisy.png").astype(float) - astronaut
    unclipped = (astronaut > 80) & (astronaut < 175)
    assert abs(diff[unclipped].std() - 25) < 1.0
    before = (c / "0001_noisy.png").read_bytes()
    capsys.readouterr()
    assert main(["degrade", str(tmp_path / "clean"), "-o", str(c), "--noise", "gaussian=25", "--seed", "3"]) == 0
    assert "2 skipped" in capsys.readouterr().err and (c / "0001_noisy.png").read_bytes() == before
    assert main(["degrade", str(tmp_path / "clean"), "-o", str(c), "--noise", "blur=3"]) == 2
    assert "bad noise spec" in capsys.readouterr().err


def test_console_script_and_help():
    exe = Path(sys.executable).with_name("cleanvision")
    assert exe.exists(), "the cleanvision console script is not installed (pip install -e .)"
    for cmd in ([], ["denoise"], ["degrade"], ["push"], ["eval"], ["bench"]):
        r = subprocess.run([str(exe), *cmd, "--help"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "usage: cleanvision" in r.stdout


def test_push_dry_run_checks_the_card(tmp_path, capsys):
    from cleanvision import DnCNN

    DnCNN(depth=3, width=4).save_pretrained(tmp_path / "m")
    card = Path(__file__).resolve().parents[1] / "model_card.md"
    assert main(["push", str(tmp_path / "m"), "--repo-id", "me/x", "--card", str(card), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "me/x/README.md" in out and "me/x/model.safetensors" in out
    assert main(["push", str(tmp_path / "nowhere"), "--repo-id", "me/x", "--dry-run"]) == 1


def test_push_uploads_one_commit(tmp_path):
    """Everything up to the network call: the files and the commit the Hub API would receive."""
    from cleanvision import DnCNN
    from cleanvision.hub import push_to_hub

    DnCNN(depth=3, width=4).save_pretrained(tmp_path / "m")
    calls = {}

    class FakeApi:
        def create_repo(self, repo_id, **kw):
            calls["repo"] = (repo_id, kw)

        def create_commit(self, repo_id, operations, **kw):
            calls["files"] = sorted(op.path_in_repo for op in operations)
            return type("Info", (), {"commit_url": f"https://hub/{repo_id}/commit/1"})()

    card = Path(__file__).resolve().parents[1] / "model_card.md"
    url = push_to_hub(tmp_path / "m", "me/x", card, api=FakeApi())
    assert url.endswith("me/x/commit/1") and calls["repo"][0] == "me/x"
    assert calls["files"] == ["README.md", "config.json", "model.safetensors"]


def test_interrupted_folder_leaves_no_partial_files(tmp_path, astronaut):
    """Ctrl-C in the middle of a folder: finished files stay whole, nothing half-written."""
    src = tmp_path / "in"
    for i in range(6):
        write_image(src / f"{i}.png", add_gaussian_noise(astronaut, 20, i))
    out = tmp_path / "out"
    import signal
    import time

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # a shell that starts the suite in the background (``cmd &``) ignores SIGINT in its children;
    # the CLI under test gets Ctrl-C as a terminal would deliver it
    p = subprocess.Popen([sys.executable, "-m", "cleanvision.cli", "denoise", str(src), "-o", str(out)],
                         stderr=subprocess.PIPE, text=True, env=env,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    deadline = time.time() + 120
    while not (out.exists() and any(out.glob("*.png"))) and time.time() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "interrupted" in err
    written = [f for f in out.iterdir() if f.name != RECORD_NAME]
    assert 1 <= len(written) < 6 and all(f.suffix == ".png" for f in written)
    for f in written:
        assert read_image(f).shape == astronaut.shape
    assert set(json.loads((out / RECORD_NAME).read_text())) == {f.name for f in written}  # recorded on Ctrl-C too
    shutil.rmtree(out)


def test_denoise_splits_files_across_two_processes(tmp_path, astronaut):
    """`accelerate`/torchrun with 2 CPU processes: every file restored once, by one process."""
    src = tmp_path / "in"
    for i in range(5):
        write_image(src / f"{i}.png", add_gaussian_noise(astronaut[:128, :128], 20, i))
    out = tmp_path / "out"
    env = {**os.environ, "ACCELERATE_USE_CPU": "yes", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                        "--master_port", "29541", "-m", "cleanvision.cli", "denoise", str(src), "-o", str(out)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == [RECORD_NAME] + [f"{i}.png" for i in range(5)]
    assert "[process 0] 3 written" in r.stderr and "[process 1] 2 written" in r.stderr
    # both processes' entries in the one record (merged under a lock, none lost)
    assert sorted(json.loads((out / RECORD_NAME).read_text())) == [f"{i}.png" for i in range(5)]


# --------------------------------------------------------------------------- re-runs and records


def _kept(err: str) -> list[str]:
    """The lines listing outputs kept because they were made otherwise (after their heading)."""
    lines = err.splitlines()
    start = next(i for i, line in enumerate(lines) if "made with other settings than these" in line)
    return [line.strip() for line in lines[start + 1:] if line.startswith("  ")]


@pytest.fixture()
def two_photos(tmp_path, astronaut, coffee):
    d = tmp_path / "photos"
    write_image(d / "astronaut.png", add_gaussian_noise(astronaut[100:228, 150:310], 25, rng=0))
    write_image(d / "coffee.png", add_gaussian_noise(coffee[:96, 200:328], 25, rng=1))
    return d


def test_rerun_with_other_settings_lists_each_kept_output_and_how_it_differs(tmp_path, two_photos, camera, capsys):
    """Another --strength, --engine or --model over the same outputs writes nothing over them, but
    says per file how the settings differ and how to replace them, and exits 1; the same settings
    again skip with exit 0; --overwrite replaces them and records what it did."""
    out = tmp_path / "out"
    run = lambda *extra: main(["denoise", str(two_photos), "-o", str(out), "--engine", "fp32", *extra])  # noqa: E731
    a, c = out / "astronaut.png", out / "coffee.png"
    assert run() == 0
    first = {p: p.read_bytes() for p in (a, c)}
    capsys.readouterr()
    assert run() == 0
    assert "0 written to" in (err := capsys.readouterr().err) and "2 skipped (already made with these settings)" in err

    assert run("--strength", "0.5") == 1
    err = capsys.readouterr().err
    assert "0 written" in err and "2 kept" in err and "rerun with --overwrite to replace them" in err
    assert _kept(err) == [f"{a}: strength 1 -> 0.5", f"{c}: strength 1 -> 0.5"]
    assert main(["denoise", str(two_photos), "-o", str(out), "--engine", "reference", "--strength", "0.5"]) == 1
    assert _kept(capsys.readouterr().err)[0] == f"{a}: engine fp32 -> reference, strength 1 -> 0.5"
    from cleanvision import DnCNN

    DnCNN(depth=3, width=4).save_pretrained(tmp_path / "tiny")
    assert run("--model", str(tmp_path / "tiny")) == 1
    line = _kept(capsys.readouterr().err)[0]
    assert line.startswith(f"{a}: model shipped (weights sha256 ")
    assert f"-> {tmp_path / 'tiny'} (weights sha256 " in line
    assert {p: p.read_bytes() for p in (a, c)} == first  # nothing was replaced

    assert run("--strength", "0.5", "--overwrite") == 0
    assert all(p.read_bytes() != first[p] for p in (a, c))
    record = json.loads((out / RECORD_NAME).read_text())
    assert record["astronaut.png"]["settings"]["strength"] == 0.5 and record["coffee.png"]["command"] == "denoise"
    capsys.readouterr()
    assert run("--strength", "0.5") == 0 and "2 skipped" in capsys.readouterr().err

    # an output there with no record (put there by hand): kept and said, never silently skipped
    write_image(two_photos / "camera.png", camera[:64, :64])
    write_image(out / "camera.png", camera[:64, :64])
    assert run("--strength", "0.5") == 1
    assert _kept(capsys.readouterr().err) == [f"{out / 'camera.png'}: no record of the settings it was made with"]


def test_degrade_rerun_with_other_noise_or_seed_is_listed(tmp_path, astronaut, capsys):
    clean = tmp_path / "clean"
    write_image(clean / "0001.png", astronaut[:128, :128])
    out = tmp_path / "noisy"
    assert main(["degrade", str(clean), "-o", str(out), "--seed", "0"]) == 0
    before = (out / "0001_noisy.png").read_bytes()
    capsys.readouterr()
    assert main(["degrade", str(clean), "-o", str(out), "--seed", "1"]) == 1
    assert _kept(capsys.readouterr().err) == [f"{out / '0001_noisy.png'}: seed 0 -> 1"]
    assert main(["degrade", str(clean), "-o", str(out), "--noise", "gaussian=25"]) == 1
    assert _kept(capsys.readouterr().err) == [f"{out / '0001_noisy.png'}: noise mixed -> gaussian=25"]
    assert (out / "0001_noisy.png").read_bytes() == before
    assert main(["degrade", str(clean), "-o", str(out), "--seed", "1", "--overwrite"]) == 0
    assert (out / "0001_noisy.png").read_bytes() != before
    assert json.loads((out / "degradations.json").read_text())["0001_noisy.png"]["seed"] == 1


def test_outputs_written_into_an_input_folder_are_never_read_back(tmp_path, two_photos, capsys):
    """OUTDIR = the input folder, or inside a folder scanned with -r: a second run takes only the
    photos, never the outputs (no x_denoised_denoised.png, no out/out/), and says so."""
    photos = two_photos
    for _ in range(2):
        assert main(["denoise", str(photos), "-o", str(photos), "--suffix", "_denoised", "--engine", "fp32"]) == 0
    names = sorted(p.name for p in photos.iterdir())
    assert names == [RECORD_NAME, "astronaut.png", "astronaut_denoised.png", "coffee.png", "coffee_denoised.png"]
    err = capsys.readouterr().err
    assert f"2 file(s) in {photos} that earlier runs wrote are not taken as inputs" in err and "2 skipped" in err
    # the record gone, the suffix alone still tells outputs from photos
    (photos / RECORD_NAME).unlink()
    assert main(["denoise", str(photos), "-o", str(photos), "--suffix", "_denoised", "--engine", "fp32"]) == 1
    assert "no record of the settings" in capsys.readouterr().err
    assert not list(photos.glob("*_denoised_denoised*"))

    tree = tmp_path / "tree"
    shutil.copytree(photos, tree / "sub")
    shutil.move(tree / "sub" / "coffee.png", tree / "coffee.png")
    for p in tree.rglob("*_denoised.png"):
        p.unlink()
    for _ in range(2):
        assert main(["denoise", str(tree), "-r", "-o", str(tree / "clean"), "--engine", "fp32"]) == 0
    assert sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.png")) == [
        "clean/coffee.png", "clean/sub/astronaut.png", "coffee.png", "sub/astronaut.png"]

    for _ in range(2):  # degrade's outputs likewise
        assert main(["degrade", str(tree / "sub"), "-o", str(tree / "sub")]) == 0
    assert sorted(p.name for p in (tree / "sub").glob("*.png")) == ["astronaut.png", "astronaut_noisy.png"]


# --------------------------------------------------------------------------- help


def test_building_the_parser_and_every_help_import_nothing_heavy():
    """`cleanvision --help` and each subcommand's --help: no torch, numpy, OpenCV, ONNX or Hub
    client is imported for them (they would take seconds); the package's names still import."""
    heavy = ("torch", "numpy", "cv2", "onnx", "onnxruntime", "huggingface_hub", "PIL", "accelerate")
    code = f"""
import contextlib, io, sys
from cleanvision.cli import main
for sub in ([], ["denoise"], ["degrade"], ["push"], ["export"], ["bench"], ["eval"]):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main([*sub, "--help"])
        except SystemExit as e:
            assert e.code == 0, sub
print(sorted(m for m in {heavy!r} if m in sys.modules))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", r.stdout
    code = ("import sys, cleanvision; assert 'torch' not in sys.modules; "
            "from cleanvision import Denoiser, DnCNN, CleanVisionError; from cleanvision.model import DnCNN as D; "
            "assert DnCNN is D and 'Denoiser' in dir(cleanvision); print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_help_names_every_kind_of_damage(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")  # one line per paragraph: words are not split at hyphens
    for sub in ([], ["denoise"]):
        with pytest.raises(SystemExit):
            main([*sub, "--help"])
        text = capsys.readouterr().out
        for words in ("Gaussian", "salt-and-pepper", "speckle", "scribbles", "scratches", "camera sensor noise",
                      "JPEG artefacts", "noisy grey photos"):
            assert words in text, (sub, words)
    with pytest.raises(SystemExit):
        main(["denoise", "--help"])
    text = capsys.readouterr().out
    assert ".cleanvision.json" in text and "never taken as inputs" in text and "--overwrite" in text


def test_noise_level_flag(tmp_path, noisy_dir, capsys):
    """--noise-level: refused for a blind model with a one-line reason; on a noise-map model each
    level gives another restoration, and a re-run at another level says so."""
    import torch

    from browser_util import save_blind_model
    from cleanvision import DnCNN

    blind = save_blind_model(tmp_path / "blind-model")
    assert main(["denoise", str(noisy_dir), "-o", str(tmp_path / "blind"), "--noise-level", "10",
                 "--model", str(blind)]) == 1
    assert "blind" in capsys.readouterr().err and not (tmp_path / "blind").exists()
    with pytest.raises(SystemExit):
        main(["denoise", str(noisy_dir), "-o", str(tmp_path / "x"), "--noise-level", "300"])
    assert "auto or from 0 to 75" in capsys.readouterr().err
    torch.manual_seed(0)
    model = DnCNN(channels=3, depth=4, width=8, pixel_unshuffle=2, noise_map=1, estimator_depth=2, estimator_width=4)
    torch.nn.init.normal_(model.body[-1].weight, std=0.05)
    torch.nn.init.normal_(model.body[0].weight[:, -1], std=0.5)
    model.save_pretrained(tmp_path / "map-model")
    outs = {}
    for level in ("auto", "5", "40"):
        out = tmp_path / f"out-{level}"
        assert main(["denoise", str(noisy_dir), "-o", str(out), "--model", str(tmp_path / "map-model"),
                     "--noise-level", level, "--engine", "reference"]) == 0
        outs[level] = read_image(out / "astronaut.png")
    assert not np.array_equal(outs["5"], outs["40"])
    capsys.readouterr()
    code = main(["denoise", str(noisy_dir), "-o", str(tmp_path / "out-5"), "--model", str(tmp_path / "map-model"),
                 "--noise-level", "40", "--engine", "reference"])
    assert code == 1 and "noise level 5 -> 40" in capsys.readouterr().err
