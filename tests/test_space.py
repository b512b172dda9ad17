"""The Hugging Face Space: scripts/build_space.py makes a folder that runs on its own and takes
its weights through the Hub code path (offline, from a cache laid out as huggingface_hub lays it out)."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file

from browser_util import free_port, load_app
from conftest import load_script, random_dncnn
from cleanvision.image_io import read_image, write_image
from cleanvision.inference import SHIPPED_MODEL, Denoiser
from cleanvision.metrics import psnr_uint8
from cleanvision.noise import add_gaussian_noise

ROOT = Path(__file__).resolve().parents[1]
REVISION = "0123456789abcdef0123456789abcdef01234567"  # any 40-hex commit id


def _load_test():
    """scripts/load_test.py, for its wait_up() and stop() of an app process."""
    return load_script(ROOT / "scripts" / "load_test.py")


def hub_cache(cache: Path, repo_id: str, files: dict[str, Path]) -> Path:
    """Put ``files`` in ``cache`` as ``hf_hub_download`` leaves them: blobs named by their hash,
    ``snapshots/<commit>/<name>`` links to them, ``refs/main`` naming the commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    for name, src in files.items():
        digest = hashlib.sha256(src.read_bytes()).hexdigest()
        shutil.copyfile(src, repo / "blobs" / digest)
        (snapshot / name).symlink_to(Path("..") / ".." / "blobs" / digest)
    return snapshot


def test_space_folder_runs_alone_with_weights_from_the_hub_cache(tmp_path, astronaut):
    import gradio
    from huggingface_hub import SpaceCard, scan_cache_dir

    space = tmp_path / "space"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_space.py"), str(space)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (space / "app.py").is_file() and (space / "cleanvision" / "inference.py").is_file()
    assert not (space / "cleanvision" / "weights").exists() and not list(space.rglob("__pycache__"))
    requirements = (space / "requirements.txt").read_text().splitlines()
    assert "torch==2.13.0" in requirements  # and the runtime engine="auto" picks on CPUs without native bf16:
    assert any(r.startswith("onnxruntime") for r in requirements) and any(r.startswith("onnx>") for r in requirements)
    meta = SpaceCard.load(space / "README.md").data.to_dict()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and meta["sdk_version"] == gradio.__version__
    assert f"gradio[mcp]=={gradio.__version__}" in requirements  # the Space's own gradio has no MCP extra
    repo_id = load_app().HUB_REPO
    assert repo_id in meta["models"]

    cache = tmp_path / "hub"
    hub_cache(cache, repo_id, {n: SHIPPED_MODEL / n for n in ("config.json", "model.safetensors")})
    [cached] = scan_cache_dir(cache).repos  # huggingface_hub reads the layout as its own
    assert cached.repo_id == repo_id and {f.file_name for f in cached.refs["main"].files} == {
        "config.json", "model.safetensors"}

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CLEANVISION_MODEL", "HF_HOME")}
    env.update(SPACE_ID="someone/cleanvision", HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache),
               GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    # the package beside app.py is the one imported (it shadows the checkout's editable install)
    r = subprocess.run([sys.executable, "-c", "import cleanvision; print(cleanvision.__file__)"],
                       capture_output=True, text=True, cwd=space, env=env, timeout=120)
    assert Path(r.stdout.strip()).resolve() == (space / "cleanvision" / "__init__.py").resolve(), r.stderr

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "app.log"
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, str(space / "app.py"), "--port", str(port)], cwd=tmp_path,
                                env=env, stdout=f, stderr=subprocess.STDOUT)
    served = _load_test()
    try:
        served.wait_up(url, proc)
        noisy = add_gaussian_noise(astronaut[:128, :128], 25, rng=0)
        src = write_image(tmp_path / "noisy.png", noisy)
        t0 = time.time()
        _, download, status = Client(url, verbose=False).predict(handle_file(str(src)), api_name="/restore")
        assert time.time() - t0 < 120 and "Restored" in status
        restored = read_image(download)
        assert psnr_uint8(astronaut[:128, :128], restored) >= psnr_uint8(astronaut[:128, :128], noisy) + 5
        # the MCP server is on, its tool described (tests/test_mcp.py calls it); on a real Space
        # (SYSTEM=spaces too) Gradio prefixes the tool names with the Space's: cleanvision_restore
        tools = {t["name"]: t for t in httpx.get(url + "gradio_api/mcp/schema", timeout=30).json()}
        assert tools["restore"]["description"].startswith("Restore a damaged photo"), tools
    finally:
        served.stop(proc)
    text = log.read_text()
    assert f"model {repo_id} (" in text, text[-3000:]  # loaded by Hub repo id, not from a folder
    assert f"({Denoiser(random_dncnn()).engine} engine)" in text  # the engine auto picks here, as the library does


def test_which_model_the_app_loads(monkeypatch):
    """--model, else $CLEANVISION_MODEL, else on a Space (SPACE_ID) the Hub repo HUB_REPO, else the shipped one."""
    app = load_app()
    monkeypatch.delenv("CLEANVISION_MODEL", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert app.model_name() is None
    monkeypatch.setenv("SPACE_ID", "someone/cleanvision")
    assert app.model_name() == app.HUB_REPO
    monkeypatch.setenv("CLEANVISION_MODEL", "me/my-dncnn")  # a Space variable picks another repo
    assert app.model_name() == "me/my-dncnn" and app.model_name("runs/x") == "runs/x"


def test_space_check_wants_the_mcp_extra_at_the_card_version(tmp_path):
    """The Space installs gradio from the card without extras: without the pin its MCP server would not start."""
    import gradio

    build_space = load_script(ROOT / "scripts" / "build_space.py")
    space = tmp_path / "space"
    build_space.build(space)
    requirements = space / "requirements.txt"
    requirements.write_text(requirements.read_text().replace("gradio[mcp]==", "gradio[mcp]>="))
    with pytest.raises(SystemExit, match=re.escape(f"gradio[mcp]=={gradio.__version__} is not pinned")):
        build_space.check(space)
