"""Run every ``python`` and ``bash`` code block of the docs, as a user would, from the project root."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.real_model, pytest.mark.slow]


def blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", path.read_text(encoding="utf-8"), flags=re.M | re.S)


@pytest.fixture(scope="module")
def guide_env():
    if not (ROOT.parent / "shared" / "datasets").exists():
        pytest.skip("the guide's training example reads ../shared/datasets")
    out = ROOT / "runs" / "guide"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    return env


def _run_bash(script: str, env: dict) -> None:
    # `.venv/bin/mtst` in the docs means "the mtst of this environment"
    script = script.replace(".venv/bin/", str(Path(sys.executable).parent) + "/")
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=900)
    assert res.returncode == 0, f"{script}\n--- stdout\n{res.stdout[-3000:]}\n--- stderr\n{res.stderr[-3000:]}"


def test_guide_blocks_run_in_order(guide_env, monkeypatch):
    """The guide's blocks in document order: shell blocks create files that later Python blocks use."""
    text = (ROOT / "docs" / "guide.md").read_text(encoding="utf-8")
    items = re.findall(r"^```(python|bash)\n(.*?)^```", text, flags=re.M | re.S)
    assert len(items) >= 8
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    for lang, code in items:
        if lang == "bash":
            _run_bash(code, guide_env)
        else:
            exec(compile(code, "docs/guide.md", "exec"), namespace)  # noqa: S102


def test_readme_python_block_runs(monkeypatch, tmp_path):
    (code,) = blocks(ROOT / "README.md", "python")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102
    assert (tmp_path / "my-encoder" / "modules.json").exists()


def test_readme_cli_block_runs(guide_env, tmp_path):
    """README's command-line block (the set-up commands `make demo` / `make test` are tested elsewhere)."""
    script = "\n".join(b for b in blocks(ROOT / "README.md", "bash") if not b.lstrip().startswith("make "))
    assert "mtst" in script
    _run_bash(script, guide_env)
