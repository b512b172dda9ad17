"""Every generated table in README.md and model_card.md matches the files it was generated from."""
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

    expected = {"README.md": ["bench:CBSD68", "bench:Kodak24", "include:speed_amd_avx2.md", "include:speed_amd_avx512.md", "include:speed_intel_amx.md",
                               "include:load.md", "include:int8_ptq.md"],
                "model_card.md": ["bench:CBSD68", "bench:Kodak24"]}
    for name, markers in expected.items():
        text = (ROOT / name).read_text()
        for marker in markers:
            starts = [m.start() for m in re.finditer(re.escape(f"<!-- {marker} start -->"), text)]
            ends = [m.start() for m in re.finditer(re.escape(f"<!-- {marker} end -->"), text)]
            assert len(starts) == len(ends) == 1 and starts[0] < ends[0], f"{name}: <!-- {marker} --> markers"
