"""The app's MCP server: an MCP client (the ``mcp`` package, from ``gradio[mcp]``) lists the tools
over streamable HTTP at /gradio_api/mcp/ and restores a real photo through the ``restore`` tool."""
from __future__ import annotations

import asyncio
import base64

import numpy as np
import pytest
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client

from browser_util import load_app, save_blind_model, save_noise_map_model, serve_app
from cleanvision.image_io import decode_image, encode_image
from cleanvision.metrics import psnr_uint8
from cleanvision.noise import add_gaussian_noise


def _serve_mcp(denoiser=None):
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SYSTEM", raising=False)  # on a Space the tool names start with the Space's name
        with serve_app(denoiser) as (_, url):
            yield url.rstrip("/") + "/gradio_api/mcp/"


@pytest.fixture(scope="module")
def mcp_url():
    """The app served on loopback with its MCP server (launch() turns it on): the streamable HTTP URL."""
    yield from _serve_mcp()


@pytest.fixture(scope="module")
def map_folder(tmp_path_factory):
    return save_noise_map_model(tmp_path_factory.mktemp("noise-map-model"))


@pytest.fixture(scope="module")
def map_mcp_url(map_folder):
    """The same, serving a noise-map model (one told the noise level)."""
    yield from _serve_mcp(load_app().load_denoiser(str(map_folder)))


@pytest.fixture(scope="module")
def blind_mcp_url(tmp_path_factory):
    """The same, serving a blind model (one that finds the noise level itself)."""
    yield from _serve_mcp(load_app().load_denoiser(str(save_blind_model(tmp_path_factory.mktemp("blind-model")))))


def _with_session(url: str, work):
    """Run ``work(session)`` in one initialised MCP client session; return its result."""
    async def run():
        async with streamable_http_client(url) as (read, write, _), ClientSession(read, write) as session:
            await session.initialize()
            return await work(session)

    return asyncio.run(run())


def _data_url(img: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(encode_image(img, ".png")).decode()


def test_restore_is_a_tool_with_its_description(mcp_url):
    async def work(session):
        return (await session.list_tools()).tools

    tools = {t.name: t for t in _with_session(mcp_url, work)}
    assert "restore" in tools, list(tools)
    restore = tools["restore"]
    assert restore.description.startswith("Restore a damaged photo with CleanVision"), restore.description
    props = restore.inputSchema["properties"]
    assert set(props) == {"image", "strength", "noise_level"}
    assert props["image"]["description"].startswith("the photo to restore, as a file or URL")
    assert "from 0 to 1" in props["strength"]["description"] and props["strength"]["default"] == 1
    assert restore.inputSchema["required"] == ["image"]
    # the synthetic-noise demo is a tool too, every argument described with its range
    degrade = tools["degrade_and_restore"].inputSchema["properties"]
    assert "from 0 to 75" in degrade["sigma"]["description"]
    assert all(p.get("description") for p in degrade.values()), degrade


@pytest.fixture(scope="module")
def noisy_png(astronaut):
    """A noisy crop of a real photo, and its PNG as the data: URL an MCP client sends."""
    noisy = add_gaussian_noise(astronaut[96:224, 160:288], 25, rng=0)
    return noisy, _data_url(noisy)


@pytest.mark.parametrize("with_progress", [False, True], ids=["plain", "with-progress"])
def test_restore_tool_restores_a_photo(mcp_url, astronaut, noisy_png, with_progress):
    """Gradio serves a call with and without progress updates by two paths: both give the image."""
    clean = astronaut[96:224, 160:288]
    noisy, url = noisy_png
    updates = []

    async def on_progress(progress, total, message):
        updates.append(message)

    async def work(session):
        return await session.call_tool("restore", {"image": url},
                                       progress_callback=on_progress if with_progress else None)

    result = _with_session(mcp_url, work)
    assert bool(updates) == with_progress
    assert not result.isError, result.content
    images = [c for c in result.content if isinstance(c, types.ImageContent)]
    text = " ".join(c.text for c in result.content if isinstance(c, types.TextContent))
    assert len(images) == 1 and images[0].mimeType == "image/png", result.content  # the full-size download
    restored = decode_image(base64.b64decode(images[0].data), "restored.png")
    assert restored.shape == clean.shape and restored.dtype == np.uint8
    gain = psnr_uint8(clean, restored) - psnr_uint8(clean, noisy)
    assert gain >= 5.0, f"the restore tool gains only {gain:.2f} dB on astronaut, sigma 25"
    assert "Image URL: http://127.0.0.1" in text and "_restored.png" in text, text  # and where to fetch it
    assert "**Restored** 128×128 RGB 8-bit" in text, text  # the status line


def test_restore_tool_refuses_strength_out_of_range(mcp_url, astronaut):
    async def work(session):
        return await session.call_tool("restore", {"image": _data_url(astronaut[:32, :32]), "strength": 1.5})

    result = _with_session(mcp_url, work)
    text = " ".join(c.text for c in result.content if isinstance(c, types.TextContent))
    assert result.isError and "strength must be in [0, 1], got 1.5" in text, result.content


def _text(result) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


def test_restore_tool_refuses_a_noise_level_for_a_blind_model(blind_mcp_url, astronaut):
    """A blind model's tools say to leave the noise level out; a number is refused saying why."""
    async def work(session):
        image = _data_url(astronaut[:32, :32])
        tools = {t.name: t for t in (await session.list_tools()).tools}
        return tools, [await session.call_tool("restore", {"image": image, "noise_level": 10}),
                       await session.call_tool("restore", {"image": image, "noise_level": "auto"}),
                       await session.call_tool("restore", {"image": image, "noise_level": None})]

    tools, (refused, *auto) = _with_session(blind_mcp_url, work)
    level = tools["restore"].inputSchema["properties"]["noise_level"]["description"]
    assert level.startswith('leave it out (or "auto"): this server\'s model is blind'), level
    assert "blind" in tools["degrade_and_restore"].inputSchema["properties"]["noise_level"]["description"]
    assert refused.isError and "This model is blind: it finds the noise level itself" in _text(refused), refused
    for result in auto:
        assert not result.isError and "**Restored** 32×32 RGB 8-bit" in _text(result), result.content


def test_restore_tool_takes_a_noise_level_for_a_noise_map_model(map_mcp_url, map_folder, noisy_png):
    """The tool describes noise_level with its range; auto (left out, null or "auto") gives the
    model's estimate in the status line, a number is used, one out of range is refused."""
    from cleanvision import Denoiser

    noisy, url = noisy_png

    async def work(session):
        tools = {t.name: t for t in (await session.list_tools()).tools}
        calls = [await session.call_tool("restore", {"image": url, **extra})
                 for extra in ({}, {"noise_level": None}, {"noise_level": "auto"}, {"noise_level": 40},
                               {"noise_level": 80})]
        return tools, calls

    tools, (*auto, fixed, refused) = _with_session(map_mcp_url, work)
    for name in ("restore", "degrade_and_restore"):
        level = tools[name].inputSchema["properties"]["noise_level"]
        assert "from 0 to 75" in level["description"] and '"auto"' in level["description"], level
        assert "lower keeps more texture, higher removes more" in level["description"].lower(), level
        assert "noise_level" not in tools[name].inputSchema.get("required", [])
    estimate = f"noise level: auto, estimated σ {Denoiser.from_pretrained(map_folder).estimate_noise_level(noisy):.1f}"
    for result in auto:
        assert not result.isError and estimate in _text(result), (estimate, result.content)
    assert not fixed.isError and "noise level: σ 40, as set" in _text(fixed), fixed.content
    assert refused.isError and "noise_level must be in [0, 75], got 80" in _text(refused), refused.content
