"""Run every ``python`` and ``bash`` code block of the docs, as a user would, from the project root."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from needs import missing

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.real_model, pytest.mark.slow]


def blocks(path: Path, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", path.read_text(encoding="utf-8"), flags=re.M | re.S)


@pytest.fixture(scope="module")
def guide_env():
    if not (ROOT.parent / "shared" / "datasets").exists():
        missing("the guide's training example reads ../shared/datasets, which is missing")
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


@pytest.mark.timeout(1500)  # trains on real data (about 3 minutes on a free machine, 10 on a busy one)
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


@pytest.mark.timeout(900)
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


# Runs a script with argparse's parse_args patched to stop (exit 0) once the arguments are accepted: no --help,
# which would exit 0 before argparse looks at the other arguments. A script that never parses exits 3.
_PARSE_ONLY = """
import argparse, runpy, sys
parse = argparse.ArgumentParser.parse_args
def parse_then_stop(self, args=None, namespace=None):
    parse(self, args, namespace)
    raise SystemExit(0)
argparse.ArgumentParser.parse_args = parse_then_stop
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
sys.exit(3)
"""


def check_script_arguments(words: list[str]) -> subprocess.CompletedProcess:
    """Parse ``python SCRIPT ARGS...`` with the script's own argparse parser, then stop before any work."""
    return subprocess.run(
        [sys.executable, "-c", _PARSE_ONLY, *words[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def check_mtst_arguments(words: list[str]) -> None:
    """Parse ``mtst SUBCOMMAND ARGS...`` with click (typer's copy of it), as the real CLI would, without running it.

    Raises ``typer.TyperException`` (click's ``UsageError`` and its kin) for an unknown command, option or value.
    """
    import typer
    from typer.core import TyperGroup

    from mtst.cli import app

    command, ctx, name, args = typer.main.get_command(app), None, "mtst", list(words[1:])
    while isinstance(command, TyperGroup):
        ctx = typer.Context(command, info_name=name, parent=ctx)
        if not args:
            raise typer.BadParameter(f"{' '.join(words)}: a subcommand is missing", ctx=ctx)
        name, command, args = command.resolve_command(ctx, args)  # "No such command" for an unknown one
    with command.make_context(name, args, parent=ctx):  # unknown options, bad values, missing arguments
        pass


def test_argument_checks_catch_bad_flags():
    """The checks below reject what --help let through: an unknown flag, a bad value, an unknown subcommand."""
    import typer

    res = check_script_arguments(["python", "bench/cache_speed.py", "--no-such-flag"])
    assert res.returncode == 2 and "unrecognized arguments: --no-such-flag" in res.stderr
    res = check_script_arguments(["python", "bench/cache_speed.py", "--rounds", "two"])
    assert res.returncode == 2 and "invalid int value" in res.stderr
    with pytest.raises(typer.TyperException, match="No such option: --no-such-flag"):
        check_mtst_arguments(["mtst", "train", "configs/multitask.yaml", "--output", "x", "--no-such-flag"])
    with pytest.raises(typer.TyperException, match="Missing parameter: output"):
        check_mtst_arguments(["mtst", "train", "configs/multitask.yaml"])
    with pytest.raises(typer.TyperException, match="No such command 'trian'"):
        check_mtst_arguments(["mtst", "trian", "configs/multitask.yaml"])
    with pytest.raises(typer.TyperException, match="No such command 'nope'"):
        check_mtst_arguments(["mtst", "cache", "nope"])
    check_mtst_arguments(["mtst", "cache", "info"])


@pytest.mark.parametrize("doc", ["docs/benchmarks.md", "docs/discussion.md"])
def test_long_running_doc_commands_are_valid(doc, monkeypatch):
    """Benchmark and experiment commands take minutes to an hour each, so they are checked, not run: every
    script exists and its parser accepts the arguments, every mtst command parses (click), and every task
    file loads with its --set overrides."""
    from mtst.config import load_config

    monkeypatch.chdir(ROOT)  # paths in the docs are relative to the project root
    commands = _doc_commands(ROOT / doc)
    assert len(commands) >= 5
    for words in commands:
        prog = Path(words[0]).name
        if prog == "python":
            assert (ROOT / words[1]).is_file(), f"{doc}: {words[1]} does not exist"
            res = check_script_arguments(words)
            assert res.returncode == 0, f"{doc}: {' '.join(words)}\n{res.stderr[-2000:]}"
        elif prog == "mtst":
            check_mtst_arguments(["mtst", *words[1:]])
            overrides = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--set"]
            for config in (w for w in words[2:] if w.endswith((".yaml", ".yml"))):
                load_config(ROOT / config, overrides)
        else:
            pytest.fail(f"{doc}: unexpected command {' '.join(words)}")
