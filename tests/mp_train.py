"""Run a few training steps in each process of an ``accelerate launch``; write each rank's weights.

Used by tests/test_multiprocess.py: ``accelerate launch --num_processes 2 ... mp_train.py BACKBONE DATA OUT``.
"""

import sys
from pathlib import Path

from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))

from mtst.config import MTSTConfig  # noqa: E402
from mtst.training import Trainer  # noqa: E402


def main() -> None:
    backbone, data, out = sys.argv[1:4]
    cfg = MTSTConfig.from_dict(
        {
            "model": {"backbone": backbone, "max_length": 32},
            "tasks": [
                {"name": "topic", "type": "classification", "train": "cls.tsv"},
                {"name": "ner", "type": "token_classification", "train": "ner.conll"},
            ],
            "train": {"max_steps": 4, "batch_size": 8, "lr": 1e-3, "seed": 5},
        },
        base_dir=data,
    )
    trainer = Trainer(cfg, device="cpu")
    tasks = [r.task for r in trainer.steps()]
    rank = trainer.accelerator.process_index
    state = {k: v.detach().contiguous() for k, v in trainer.model.state_dict().items()}
    save_file(state, str(Path(out) / f"rank{rank}.safetensors"))
    Path(out, f"rank{rank}.txt").write_text(
        f"{trainer.accelerator.num_processes} {trainer.accelerator.distributed_type} {' '.join(tasks)}"
    )


if __name__ == "__main__":
    main()
