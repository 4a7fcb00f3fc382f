"""Run a few training steps in each process of an ``accelerate launch``; write each rank's weights and rows.

Used by tests/test_multiprocess.py: ``accelerate launch --num_processes 2 ... mp_train.py BACKBONE DATA OUT``.
"""

import json
import sys
from pathlib import Path

from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))

from mtst.config import MTSTConfig  # noqa: E402
from mtst.training import Trainer  # noqa: E402


def make_config(backbone: str, data: str) -> MTSTConfig:
    """Two tasks whose losses are means over the batch's sentences (no dropout): a batch twice as large made of
    both ranks' rows gives the gradient the two ranks average."""
    return MTSTConfig.from_dict(
        {
            "model": {"backbone": backbone, "max_length": 32},
            "tasks": [
                {"name": "topic", "type": "classification", "train": "cls.tsv", "dropout": 0.0},
                {"name": "ner", "type": "token_classification", "train": "ner.conll", "crf": True, "dropout": 0.0},
            ],
            "train": {"max_steps": 4, "batch_size": 8, "lr": 1e-3, "seed": 5},
        },
        base_dir=data,
    )


class Recorder:
    """Wraps a task's batch stream and keeps every batch of row indices it hands out."""

    def __init__(self, batches):
        self.batches, self.drawn = batches, []

    def __next__(self):
        batch = next(self.batches)
        self.drawn.append([int(i) for i in batch])
        return batch


def main() -> None:
    backbone, data, out = sys.argv[1:4]
    trainer = Trainer(make_config(backbone, data), device="cpu")
    epoch0 = {name: [[int(i) for i in batch] for batch in b.plan(0)] for name, b in trainer.batches.items()}
    rows = {name: len(b.lengths) for name, b in trainer.batches.items()}
    recorders = {name: Recorder(b) for name, b in trainer.batches.items()}
    trainer.batches = recorders
    tasks = [r.task for r in trainer.steps()]
    rank = trainer.accelerator.process_index
    state = {k: v.detach().contiguous() for k, v in trainer.model.state_dict().items()}
    save_file(state, str(Path(out) / f"rank{rank}.safetensors"))
    info = {
        "processes": trainer.accelerator.num_processes,
        "distributed_type": str(trainer.accelerator.distributed_type),
        "tasks": tasks,
        "rows": {name: r.drawn for name, r in recorders.items()},
        "epoch0": epoch0,  # this rank's batches of the first epoch
        "dataset_rows": rows,
    }
    Path(out, f"rank{rank}.json").write_text(json.dumps(info))


if __name__ == "__main__":
    main()
