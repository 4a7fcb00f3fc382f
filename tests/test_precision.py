"""mtst.precision: native-bf16 detection, "auto", the fp32 fallback (warned once), bf16 autocast in encode/predict."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mtst import precision
from mtst.cli import app
from mtst.config import TaskConfig
from mtst.model import MultiTaskModel
from mtst.tasks import build_task


@pytest.fixture
def cpu_features(monkeypatch):
    """Pretend the CPU reports the given features and torch kernel level (detection re-runs)."""

    def set_features(features: dict, capability: str = "AVX512") -> None:
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: features)
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
        precision.cpu_has_native_bf16.cache_clear()

    yield set_features
    precision.cpu_has_native_bf16.cache_clear()


def test_native_bf16_needs_the_instructions_and_avx512_kernels(cpu_features):
    cpu_features({"avx512_bf16": True, "amx_bf16": False, "avx512_vnni": True})
    assert precision.cpu_has_native_bf16()
    assert precision.cpu_capability() == "AVX512 (avx512_bf16, avx512_vnni)"
    cpu_features({"amx_bf16": True})
    assert precision.cpu_has_native_bf16()
    cpu_features({"avx512_bf16": True}, capability="AVX2")  # e.g. ATEN_CPU_CAPABILITY=avx2
    assert not precision.cpu_has_native_bf16()
    cpu_features({"avx2": True, "avx512_bf16": False}, capability="AVX2")
    assert not precision.cpu_has_native_bf16()
    assert precision.cpu_capability() == "AVX2 (no bf16 or VNNI features)"


def test_resolve_precision(cpu_features, caplog, monkeypatch):
    monkeypatch.setattr(precision, "_warned", set())
    cpu_features({"avx512_bf16": True})
    assert [precision.resolve_precision(p) for p in (None, "fp32", "bf16", "auto")] == ["fp32", "fp32", "bf16", "bf16"]
    cpu_features({"avx512_bf16": False}, capability="AVX2")
    with caplog.at_level(logging.WARNING, logger="mtst.precision"):
        assert precision.resolve_precision("auto") == "fp32"  # silently
        assert not caplog.records
        assert precision.resolve_precision("bf16") == "fp32"
        assert precision.resolve_precision("bf16") == "fp32"
    assert len(caplog.records) == 1  # the fallback is said once, not per call
    assert "no native bf16" in caplog.text and "running fp32 instead" in caplog.text
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, auto; got 'fp16'"):
        precision.resolve_precision("fp16")


def _autocast_seen(module: torch.nn.Module) -> list[bool]:
    seen: list[bool] = []
    module.register_forward_pre_hook(lambda m, a: seen.append(torch.is_autocast_enabled("cpu")))
    return seen


def test_encode_runs_bf16_autocast_only_where_native(tiny_encoder, cpu_features):
    texts = ["the cat sat on the mat", "paris and london", "a dog"]
    reference = tiny_encoder.encode(texts, precision="fp32")
    seen = _autocast_seen(tiny_encoder.backbone)
    cpu_features({"avx512_bf16": True})
    got = tiny_encoder.encode(texts, precision="bf16")
    assert seen == [True] and got.dtype == np.float32
    cos = (got * reference).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(reference, axis=1)
    assert cos.min() > 0.99 and np.abs(got - reference).max() > 0  # bf16 arithmetic, close to fp32
    tiny_encoder.precision = "auto"  # the encoder's default when encode is not told
    tiny_encoder.encode(texts)
    cpu_features({}, capability="AVX2")
    tiny_encoder.encode(texts)
    assert seen == [True, True, False]
    assert not torch.is_autocast_enabled("cpu") and not tiny_encoder.training  # nothing leaks out
    with pytest.raises(ValueError, match="precision must be one of"):
        tiny_encoder.encode([], precision="half")


def test_predict_runs_bf16_autocast(tiny_encoder, cpu_features):
    model = MultiTaskModel(tiny_encoder, [build_task(TaskConfig(name="topic", type="classification"), ["a", "b"])])
    seen = _autocast_seen(model.heads["topic"])
    cpu_features({"amx_bf16": True})
    preds = model.predict(["paris", "the cat"], precision="auto")
    assert seen == [True] and [set(p) for p in preds] == [{"topic"}] * 2
    assert all(isinstance(p["topic"]["score"], float) for p in preds)
    model.train()
    model.predict(["paris"], precision="fp32")
    assert seen == [True, False] and model.training  # the mode is restored


def test_cli_precision_option(tiny_model_dir):
    res = CliRunner().invoke(app, ["encode", "a dog", "--model", str(tiny_model_dir), "--precision", "fp16"])
    assert res.exit_code == 2 and "precision must be one of fp32, bf16, auto" in res.output
    args = ["similarity", "a dog", "a cat", "--model", str(tiny_model_dir), "--precision", "auto"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
