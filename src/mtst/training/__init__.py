"""Training: set-up from a config (``setup``), the full loop (``loop``), head training from the embedding cache
(``heads``) and the run folder (``run``). ``train`` is what ``mtst train`` calls.
"""

from mtst.training.heads import HeadTrainer
from mtst.training.loop import StepRecord, Trainer, TrainingState
from mtst.training.run import build_trainer, train

__all__ = ["HeadTrainer", "StepRecord", "Trainer", "TrainingState", "build_trainer", "train"]
