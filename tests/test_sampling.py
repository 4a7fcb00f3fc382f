import itertools
import json
import math

import numpy as np
import pytest

from mtst.sampling import SAMPLING_STRATEGIES, TaskSampler, task_probabilities

SIZES = {"a": 9000, "b": 1000}
DRAWS = 20_000


def _within_binomial_bound(count: int, n: int, p: float, sds: float = 4.0) -> bool:
    return abs(count - n * p) <= sds * math.sqrt(n * p * (1 - p))


def test_probabilities_per_strategy():
    assert task_probabilities(SIZES, "proportional") == pytest.approx({"a": 0.9, "b": 0.1})
    assert task_probabilities(SIZES, "temperature", temperature=2.0) == pytest.approx({"a": 0.75, "b": 0.25})
    assert task_probabilities(SIZES, "temperature", temperature=1.0) == pytest.approx({"a": 0.9, "b": 0.1})
    assert task_probabilities(SIZES, "temperature", temperature=1e9) == pytest.approx({"a": 0.5, "b": 0.5})
    assert task_probabilities({"x": 1, "y": 500, "z": 10**12}, "round_robin") == pytest.approx(
        {"x": 1 / 3, "y": 1 / 3, "z": 1 / 3}
    )


def test_probabilities_keep_order_and_sum_to_one():
    sizes = {"z": 3, "a": 10**15, "m": 7}
    for strategy in SAMPLING_STRATEGIES:
        probs = task_probabilities(sizes, strategy, temperature=3.0)
        assert list(probs) == ["z", "a", "m"]
        assert sum(probs.values()) == pytest.approx(1.0)
        assert all(p > 0 for p in probs.values())


@pytest.mark.parametrize(("strategy", "p_a"), [("proportional", 0.9), ("temperature", 0.75)])
def test_sampled_proportions_within_binomial_bound(strategy, p_a):
    sampler = TaskSampler(SIZES, strategy, temperature=2.0, seed=123)
    draws = list(itertools.islice(sampler, DRAWS))
    assert set(draws) == {"a", "b"}
    assert _within_binomial_bound(draws.count("a"), DRAWS, p_a)
    assert sampler.probabilities == pytest.approx({"a": p_a, "b": 1 - p_a})


def test_same_seed_same_sequence_other_seed_differs():
    first = list(itertools.islice(TaskSampler(SIZES, seed=7), 200))
    again = list(itertools.islice(TaskSampler(SIZES, seed=7), 200))
    other = list(itertools.islice(TaskSampler(SIZES, seed=8), 200))
    assert first == again
    assert first != other


def test_round_robin_exact_order():
    sampler = TaskSampler({"c": 5, "a": 100, "b": 1}, "round_robin", seed=99)
    assert [next(sampler) for _ in range(7)] == ["c", "a", "b", "c", "a", "b", "c"]
    assert iter(sampler) is sampler


@pytest.mark.parametrize("strategy", SAMPLING_STRATEGIES)
@pytest.mark.parametrize("via_json", [False, True])
def test_resume_continues_exactly(strategy, via_json):
    sizes = {"a": 900, "b": 100, "c": 40}
    uninterrupted = TaskSampler(sizes, strategy, temperature=2.0, seed=5)
    expected = [next(uninterrupted) for _ in range(300)]

    interrupted = TaskSampler(sizes, strategy, temperature=2.0, seed=5)
    head = [next(interrupted) for _ in range(113)]
    state = interrupted.state_dict()
    if via_json:
        state = json.loads(json.dumps(state))
    tail_original = [next(interrupted) for _ in range(187)]

    resumed = TaskSampler(sizes, strategy, temperature=2.0, seed=5)
    next(resumed)  # a sampler that already moved must still jump to the saved position
    resumed.load_state_dict(state)
    tail_resumed = [next(resumed) for _ in range(187)]

    assert head + tail_original == expected
    assert head + tail_resumed == expected
    assert resumed.drawn == 300


def test_state_dict_is_a_snapshot():
    sampler = TaskSampler(SIZES, "temperature", seed=1)
    state = sampler.state_dict()
    json.dumps(state)
    list(itertools.islice(sampler, 10))
    assert state["drawn"] == 0


def test_load_state_dict_mismatch_errors():
    state = TaskSampler(SIZES, "proportional").state_dict()
    with pytest.raises(ValueError, match=r"strategy 'proportional' \(saved\) vs 'round_robin'"):
        TaskSampler(SIZES, "round_robin").load_state_dict(state)
    with pytest.raises(ValueError, match=r"sizes .* \(saved\) vs .*same\s+tasks, data"):
        TaskSampler({"a": 9000, "b": 999}).load_state_dict(state)
    temp_state = TaskSampler(SIZES, "temperature", temperature=2.0).state_dict()
    with pytest.raises(ValueError, match="temperature 2.0 \\(saved\\) vs 3.0"):
        TaskSampler(SIZES, "temperature", temperature=3.0).load_state_dict(temp_state)
    with pytest.raises(ValueError, match="missing rng"):
        TaskSampler(SIZES).load_state_dict({k: v for k, v in state.items() if k != "rng"})


def test_errors():
    with pytest.raises(ValueError, match="Unknown sampling strategy 'temprature'. Did you mean 'temperature'"):
        task_probabilities(SIZES, "temprature")
    with pytest.raises(ValueError, match="Valid strategies are: proportional, temperature, round_robin"):
        TaskSampler(SIZES, "uniform")
    with pytest.raises(ValueError, match="sizes is empty"):
        task_probabilities({}, "proportional")
    with pytest.raises(ValueError, match="task 'b' has size 0; every size must be > 0"):
        task_probabilities({"a": 3, "b": 0}, "round_robin")
    with pytest.raises(ValueError, match="task 'b' has size -2"):
        TaskSampler({"a": 3, "b": -2})
    with pytest.raises(TypeError, match="task 'a': size must be an integer"):
        task_probabilities({"a": 2.5}, "proportional")
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="temperature must be > 0"):
            task_probabilities(SIZES, "temperature", temperature=bad)


@pytest.mark.parametrize("rows, world", [(100, 3), (96, 4), (7, 2), (5, 8)])
def test_processes_get_disjoint_batches_that_cover_each_epoch(rows, world):
    from mtst.batching import LengthGroupedBatches

    lengths = np.random.default_rng(0).integers(1, 50, rows)
    shards = [LengthGroupedBatches(lengths, 8, seed=11, rank=r, world=world, chunk_batches=2) for r in range(world)]
    full = LengthGroupedBatches(lengths, 8, seed=11, chunk_batches=2)
    for epoch in (0, 1):
        plans = [s.plan(epoch) for s in shards]
        assert len({len(p) for p in plans}) == 1 and len(plans[0]) == -(-full.batches_per_epoch // world)
        assert all(s.batches_per_epoch == len(plans[0]) for s in shards)
        seen = [int(i) for p in plans for b in p for i in b]
        assert sorted(set(seen)) == list(range(rows))  # every row, in every epoch
        filler = (-full.batches_per_epoch) % world  # the first batches, dealt again to fill the last round
        one = full.plan(epoch)
        fill = [one[i % len(one)] for i in range(filler)]
        repeated = {i for i in seen if seen.count(i) > 1}
        assert repeated <= {int(i) for b in fill for i in b}
        assert len(seen) - len(set(seen)) == sum(len(b) for b in fill)
        # the deal is of the one-process plan: each process's batches are batches of it
        assert {tuple(b) for p in plans for b in p} <= {tuple(b) for b in full.plan(epoch)}
    with pytest.raises(ValueError, match="rank must be in"):
        LengthGroupedBatches(lengths, 8, seed=11, rank=2, world=2)


def test_a_process_shard_resumes_where_it_stopped():
    from mtst.batching import LengthGroupedBatches

    lengths = np.arange(1, 60)
    a = LengthGroupedBatches(lengths, 4, seed=3, rank=1, world=3)
    drawn = [next(a).tolist() for _ in range(9)]  # past the first epoch (5 batches per process)
    b = LengthGroupedBatches(lengths, 4, seed=3, rank=1, world=3)
    b.load_state_dict({"epoch": 0, "position": 4})
    assert [next(b).tolist() for _ in range(5)] == drawn[4:]
