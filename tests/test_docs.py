"""Run every ``python`` and ``bash`` code block of the docs, as a user would, from the project root."""

import os
import re
import shlex
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
    res = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
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


def _doc_commands(path: Path) -> list[list[str]]:
    """Each command line of a doc's bash blocks, as words, without leading VAR=value assignments."""
    commands = []
    for block in blocks(path, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                words.pop(0)
            if words:
                commands.append(words)
    return commands


@pytest.mark.parametrize("doc", ["docs/benchmarks.md", "docs/discussion.md"])
def test_long_running_doc_commands_are_valid(doc):
    """Benchmark and experiment commands take minutes to an hour each, so they are checked, not run: every
    script exists and accepts its arguments (argparse, with --help appended), and every task file loads with
    its --set overrides."""
    from mtst.config import load_config

    commands = _doc_commands(ROOT / doc)
    assert len(commands) >= 5
    for words in commands:
        prog = Path(words[0]).name
        if prog == "python":
            assert (ROOT / words[1]).is_file(), f"{doc}: {words[1]} does not exist"
            res = subprocess.run(
                [sys.executable, words[1], *words[2:], "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
            )
            assert res.returncode == 0, f"{doc}: {' '.join(words)}\n{res.stderr[-2000:]}"
        elif prog == "mtst":
            assert words[1] in ("train", "evaluate", "encode", "cache", "demo"), f"{doc}: {' '.join(words)}"
            overrides = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--set"]
            for config in (w for w in words[2:] if w.endswith((".yaml", ".yml"))):
                load_config(ROOT / config, overrides)
        else:
            pytest.fail(f"{doc}: unexpected command {' '.join(words)}")
