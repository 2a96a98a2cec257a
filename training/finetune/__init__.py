"""Fine-tune a code model on one repository: LoRA, QLoRA or full, resumable, DDP-ready.

Read in this order: :mod:`.run` (the run, top to bottom) uses :mod:`.config` (what a run is
told and carries), :mod:`.preflight` (what is checked before anything is written),
:mod:`.batches` (token ids, padded batches, resumable order), :mod:`.model` (peft wrapping),
:mod:`.evaluation` (held-out loss, exact match, early stopping, the no-improvement rule),
:mod:`.checkpoints` and :mod:`.adapter` (with its :mod:`.card`). :mod:`.cli` is
``repocomplete finetune``; ``python -m training.finetune`` runs it under ``accelerate launch``.
Checkpoint files and the learning-rate schedule are shared with pretraining
(:mod:`training.checkpoint`, :mod:`training.schedule`).
"""

from training.finetune.adapter import ADAPTER_METADATA, METRICS_FILE
from training.finetune.batches import BatchStream, TokenizedSample, collate, tokenize_samples
from training.finetune.config import METHODS, FinetuneConfig, FinetuneError, FinetuneResult, TrainState
from training.finetune.evaluation import metrics_table
from training.finetune.model import ALL_LINEAR
from training.finetune.preflight import check_method, estimate_memory_bytes
from training.finetune.progress import quiet_libraries
from training.finetune.run import finetune

__all__ = ["ADAPTER_METADATA", "ALL_LINEAR", "METHODS", "METRICS_FILE", "BatchStream", "FinetuneConfig",
           "FinetuneError", "FinetuneResult", "TokenizedSample", "TrainState", "check_method", "collate",
           "estimate_memory_bytes", "finetune", "metrics_table", "quiet_libraries", "tokenize_samples"]
