"""Which task the next training batch comes from: proportional, temperature-scaled or round-robin sampling.

With tasks of very different sizes, proportional sampling lets the largest task dominate; temperature
sampling (``p ∝ n ** (1 / T)``, T = 2 is a common choice) flattens the mix, and round robin gives every
task the same number of batches. ``TaskSampler`` saves and restores its position, so a resumed run
draws exactly the tasks an uninterrupted one would have.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from numbers import Integral
from typing import Any

import numpy as np

SAMPLING_STRATEGIES = ("proportional", "temperature", "round_robin")


def _check_strategy(strategy: str) -> str:
    if strategy not in SAMPLING_STRATEGIES:
        close = difflib.get_close_matches(str(strategy), SAMPLING_STRATEGIES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown sampling strategy {strategy!r}.{hint} Valid strategies are: {', '.join(SAMPLING_STRATEGIES)}."
        )
    return strategy


def _check_sizes(sizes: Mapping[str, int]) -> dict[str, int]:
    if not sizes:
        raise ValueError("sizes is empty: task sampling needs at least one task with training examples.")
    checked: dict[str, int] = {}
    for name, n in sizes.items():
        if isinstance(n, bool) or not isinstance(n, Integral):
            raise TypeError(f"task {name!r}: size must be an integer, got {n!r}.")
        if n <= 0:
            raise ValueError(
                f"task {name!r} has size {n}; every size must be > 0 (give the task training data or drop it)."
            )
        checked[str(name)] = int(n)
    return checked


def _check_temperature(temperature: float) -> float:
    if not temperature > 0:  # also rejects NaN
        raise ValueError(f"temperature must be > 0 (1 = proportional, larger = closer to uniform), got {temperature}.")
    return float(temperature)


def task_probabilities(sizes: Mapping[str, int], strategy: str, *, temperature: float = 2.0) -> dict[str, float]:
    """Probability of drawing each task, in the order of ``sizes``.

    proportional: ``p ∝ n``; temperature: ``p ∝ n ** (1 / T)``; round_robin: ``1 / k`` each.
    """
    _check_strategy(strategy)
    checked = _check_sizes(sizes)
    temperature = _check_temperature(temperature)
    names = list(checked)
    if strategy == "round_robin":
        return {name: 1.0 / len(names) for name in names}
    exponent = 1.0 if strategy == "proportional" else 1.0 / temperature
    logits = np.array([math.log(checked[name]) for name in names], dtype=np.float64) * exponent  # [k]
    weights = np.exp(logits - logits.max())  # [k]; shifted by the max so large sizes cannot overflow
    probs = weights / weights.sum()
    return {name: float(p) for name, p in zip(names, probs, strict=True)}


class TaskSampler:
    """An endless iterator of task names; ``state_dict``/``load_state_dict`` resume it exactly.

    Random strategies draw from ``numpy.random.default_rng(seed)``; round robin cycles the tasks in the
    order of ``sizes``.
    """

    def __init__(
        self, sizes: Mapping[str, int], strategy: str = "proportional", *, temperature: float = 2.0, seed: int = 0
    ) -> None:
        self.probabilities: dict[str, float] = task_probabilities(sizes, strategy, temperature=temperature)
        self.sizes: dict[str, int] = _check_sizes(sizes)
        self.tasks: tuple[str, ...] = tuple(self.sizes)
        self.strategy = strategy
        self.temperature = float(temperature)
        self.seed = seed
        self.drawn = 0  # tasks handed out so far; round robin's position is drawn % len(tasks)
        self._rng = np.random.default_rng(seed)
        cdf = np.cumsum([self.probabilities[t] for t in self.tasks])  # [k]
        cdf[-1] = 1.0  # rounding must not leave a gap above the last task
        self._cdf = cdf

    def __iter__(self) -> TaskSampler:
        return self

    def __next__(self) -> str:
        """The task of the next batch."""
        if self.strategy == "round_robin":
            index = self.drawn % len(self.tasks)
        else:
            index = int(np.searchsorted(self._cdf, self._rng.random(), side="right"))
            index = min(index, len(self.tasks) - 1)
        self.drawn += 1
        return self.tasks[index]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the sequence exactly (JSON-serialisable)."""
        return {
            "strategy": self.strategy,
            "sizes": dict(self.sizes),
            "temperature": self.temperature,
            "seed": self.seed,
            "drawn": self.drawn,
            "rng": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a ``state_dict``; it must come from a sampler with the same tasks, sizes and strategy."""
        missing = [k for k in ("strategy", "sizes", "drawn", "rng") if k not in state]
        if missing:
            raise ValueError(
                f"Sampler state is missing {', '.join(missing)}; pass what TaskSampler.state_dict returned."
            )
        saved_sizes = {str(k): int(v) for k, v in state["sizes"].items()}
        mismatches = []
        if state["strategy"] != self.strategy:
            mismatches.append(f"strategy {state['strategy']!r} (saved) vs {self.strategy!r} (this sampler)")
        if list(saved_sizes.items()) != list(self.sizes.items()):
            mismatches.append(f"sizes {saved_sizes} (saved) vs {self.sizes} (this sampler)")
        if self.strategy == "temperature" and float(state.get("temperature", math.nan)) != self.temperature:
            mismatches.append(f"temperature {state.get('temperature')} (saved) vs {self.temperature} (this sampler)")
        if mismatches:
            raise ValueError(
                "Sampler state does not match this sampler: " + "; ".join(mismatches) + ". Resume with the same "
                "tasks, data and sampling settings, or start a fresh sampler."
            )
        self._rng.bit_generator.state = dict(state["rng"])
        self.drawn = int(state["drawn"])
        self.seed = state.get("seed", self.seed)

    def __repr__(self) -> str:
        probs = ", ".join(f"{t}={p:.3f}" for t, p in self.probabilities.items())
        return f"TaskSampler({self.strategy}, {probs}, drawn={self.drawn})"
