"""Two CPU processes under ``accelerate launch`` (gloo) train on different rows and end with the weights of one
process trained on the union of their batches."""

import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from needs import missing
from safetensors.torch import load_file
from toydata import write_toy_data

pytestmark = pytest.mark.slow


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (no fixed port: parallel runs would collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_as_one_on_the_union_of_their_batches(tiny_model_dir, tmp_path):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    if accelerate is None:
        missing("the accelerate command is not installed")
    data = write_toy_data(tmp_path / "data")
    script = Path(__file__).parent / "mp_train.py"
    cmd = [
        accelerate,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        str(free_port()),
        str(script),
        str(tiny_model_dir),
        str(data),
        str(tmp_path),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    infos = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(i["processes"] == 2 and i["distributed_type"].endswith("MULTI_CPU") for i in infos), infos
    assert infos[0]["tasks"] == infos[1]["tasks"]  # both processes drew the same task at every step
    assert set(infos[0]["tasks"]) == {"topic", "ner"}
    rows0, rows1 = infos[0]["rows"], infos[1]["rows"]
    for task in rows0:  # each rank trained on its own rows
        assert len(rows0[task]) == len(rows1[task]) == infos[0]["tasks"].count(task)
        assert all(a != b for a, b in zip(rows0[task], rows1[task], strict=True)), task
    for task, n in infos[0]["dataset_rows"].items():  # an epoch's rows are dealt out: disjoint, and all of them
        plans = [[row for batch in i["epoch0"][task] for row in batch] for i in infos]
        batches = math.ceil(n / 8)  # batch_size 8
        assert len(infos[0]["epoch0"][task]) == len(infos[1]["epoch0"][task]) == math.ceil(batches / 2), task
        assert set(plans[0]) | set(plans[1]) == set(range(n)), task
        repeated = set(plans[0]) & set(plans[1])  # the batches that fill an uneven last round repeat the first
        first = set(infos[0]["epoch0"][task][0])
        assert repeated <= first and len(plans[0]) == len(set(plans[0])), task
    w0, w1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert w0.keys() == w1.keys()
    for k in w0:
        torch.testing.assert_close(w0[k], w1[k], rtol=0, atol=0, msg=k)
    start = load_file(str(tiny_model_dir / "model.safetensors"))
    moved = [
        k for k in start if f"encoder.backbone.{k}" in w0 and not torch.equal(start[k], w0[f"encoder.backbone.{k}"])
    ]
    assert moved, "training changed no backbone weight"

    # One process, each step on the union of both ranks' batches: every loss here is a mean over equally many
    # sentences, so its gradient is the average of the ranks' gradients, which DDP computes.
    from mp_train import make_config

    from mtst.training import Trainer

    single = Trainer(make_config(str(tiny_model_dir), str(data)), device="cpu")
    single.batches = {
        task: iter([np.array(a + b) for a, b in zip(rows0[task], rows1[task], strict=True)]) for task in rows0
    }
    assert [r.task for r in single.steps()] == infos[0]["tasks"]
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(v, w0[k], rtol=1e-5, atol=1e-6, msg=k)  # seen: 1e-7 (one rank's rows: 5e-3)
