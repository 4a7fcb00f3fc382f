"""Two CPU processes under ``accelerate launch`` (gloo) train a few steps and end with the same weights."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from toydata import write_toy_data

pytestmark = pytest.mark.slow


def test_two_processes_end_with_same_weights(tiny_model_dir, tmp_path):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("the accelerate command is not installed")
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
        "--main_process_port",
        "29533",
        str(script),
        str(tiny_model_dir),
        str(data),
        str(tmp_path),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    infos = [(tmp_path / f"rank{r}.txt").read_text().split() for r in (0, 1)]
    assert all(i[0] == "2" and i[1].endswith("MULTI_CPU") for i in infos), infos
    assert infos[0][2:] == infos[1][2:]  # both processes drew the same task at every step
    w0, w1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert w0.keys() == w1.keys()
    for k in w0:
        torch.testing.assert_close(w0[k], w1[k], rtol=0, atol=0, msg=k)
    from safetensors.torch import load_file as lf

    start = lf(str(tiny_model_dir / "model.safetensors"))
    moved = [
        k for k in start if f"encoder.backbone.{k}" in w0 and not torch.equal(start[k], w0[f"encoder.backbone.{k}"])
    ]
    assert moved, "training changed no backbone weight"
