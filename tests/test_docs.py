"""The documents: every generated block matches the files it is made from, and README and model card
stay short, readable pages for strangers."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_documents_are_up_to_date():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "update_tables.py"), "--check"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr


def test_readme_has_exactly_the_two_setup_commands_ci_uses():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [l for l in quick.splitlines() if l.strip() and not l.startswith("#")]
    assert commands == ["python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && .venv/bin/python app/app.py",
                        "bash scripts/test.sh"]
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_generated_blocks_are_there():
    """The up-to-date check above passes on a document whose markers were deleted (it only
    reports them missing), so their presence is checked here: each once, start before end."""
    import re

    expected = {"README.md": ["headline"],
                "model_card.md": ["headline", "training-summary"],
                "docs/benchmark.md": [f"bench:{s}" for s in ("CBSD68", "Kodak24", "PolyU", "CC15", "BSD68", "Set12")]
                + ["include:pixel_pattern.md", "include:noise_level.md"],
                "docs/speed.md": ["include:speed_amd_avx2.md", "include:speed_amd_avx512.md",
                                  "include:speed_intel_amx.md", "include:load.md", "include:int8_ptq.md",
                                  "include:int8_qat.md", "include:speed_int8_amd_avx512.md", "include:int8_gate.md",
                                  "include:speed_int8_map_amd_avx512.md", "include:speed_int8_intel_amx.md"],
                "docs/training.md": ["help:train_accelerate.py"],
                "docs/training_history.md": ["training"]}
    for name, markers in expected.items():
        text = (ROOT / name).read_text()
        for marker in markers:
            starts = [m.start() for m in re.finditer(re.escape(f"<!-- {marker} start -->"), text)]
            ends = [m.start() for m in re.finditer(re.escape(f"<!-- {marker} end -->"), text)]
            assert len(starts) == len(ends) == 1 and starts[0] < ends[0], f"{name}: <!-- {marker} --> markers"


def test_readme_and_card_are_short_pages_in_plain_words():
    """README within 15,000 characters with the quick start in its first 40 lines; the card within
    25,000 (model-index included); neither speaks the project's private language."""
    import re

    readme, card = (ROOT / "README.md").read_text(), (ROOT / "model_card.md").read_text()
    assert len(readme) <= 15_000 and len(card) <= 25_000, (len(readme), len(card))
    first = readme.splitlines()[:40]
    assert "bash scripts/test.sh" in first and any(l.startswith("python3 -m venv .venv") for l in first)
    private = re.compile(r"the seed|issue [0-9]|turn [0-9]", re.I)
    for name, text in [("README.md", readme), ("model_card.md", card),
                       *((str(p.relative_to(ROOT)), p.read_text()) for p in (ROOT / "app").glob("*.py"))]:
        assert not private.search(text), f"{name}: {private.search(text).group(0)!r}"
    assert len(re.findall(r"stage [0-9]", card, re.I)) <= 3


def test_every_help_speaks_plainly():
    """``--help`` of the command, each subcommand and the training script: no private words."""
    import re

    private = re.compile(r"the seed|issue [0-9]|turn [0-9]|stages? [0-9]", re.I)
    calls = [[sys.executable, "-m", "cleanvision.cli", *sub, "--help"]
             for sub in ([], ["denoise"], ["degrade"], ["eval"], ["bench"], ["push"], ["export"])]
    calls.append([sys.executable, str(ROOT / "train_accelerate.py"), "--help"])
    for cmd in calls:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert r.returncode == 0, r.stderr
        assert not private.search(r.stdout), f"{' '.join(cmd[2:])}: {private.search(r.stdout).group(0)!r}"


def test_training_summary_says_when_the_network_was_given_a_noise_level_map():
    """A noise-map model's card names the run that grew the map input and the estimator-only refit,
    not only the last command."""
    import json
    sys.path.insert(0, str(ROOT / "scripts"))
    import update_tables

    shipped = json.loads((ROOT / "cleanvision" / "weights" / "default" / "training_info.json").read_text())
    blind = next(s for s in reversed(update_tables.training_stages(shipped))  # the runs before any map
                 if "--noise_map" not in s["command"] and "--train_only" not in s["command"])
    grown = {"command": "train_accelerate.py --init_from x --noise_map 1", "steps": 40000, "patches_seen": 1280000,
             "wall_seconds": 7.2 * 3600, "hardware": "AMD EPYC (2 cores)", "init_from": blind}
    refit = {"command": "train_accelerate.py --init_from y --train_only estimator", "steps": 3000,
             "patches_seen": 96000, "wall_seconds": 300, "hardware": "AMD EPYC (2 cores)", "init_from": grown}
    n = len(update_tables.training_stages(blind))
    text = update_tables.training_summary(refit)
    assert text.startswith(f"{n + 2} successive runs")
    assert f"Run {n + 1} gave the blind network" in text and "(40,000 steps, 7.2 hours)" in text
    assert "The last run fitted only the estimator" in text
    assert "noise-level map" not in update_tables.training_summary(blind)


def test_the_headline_speed_names_a_cpu_of_each_vendor_with_its_measured_time():
    """The README's speed line quotes each vendor's speed table: its fastest engine's 512×512
    median and the CPU it ran on, so no speed claim rests on one vendor's units."""
    import json

    sys.path.insert(0, str(ROOT / "scripts"))
    import update_tables

    line = update_tables._speed_line(ROOT / "docs" / "bench")
    for name, vendor in zip(update_tables.HEADLINE_SPEED, ("AMD", "Intel")):
        doc = json.loads((ROOT / "docs" / "bench" / name).read_text())
        fastest = min((r for r in doc["results"] if (r["width"], r["height"]) == (512, 512)
                       and r["engine"] != "opencv-nlm"), key=lambda r: r["median_s"])
        assert vendor in doc["machine"]["cpu"] and f"{fastest['median_s']:.2f} s on {vendor}" in line, line
    assert line in (ROOT / "README.md").read_text()
