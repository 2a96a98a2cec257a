"""``python -m training.finetune REPO ...``: the same command as ``repocomplete finetune``, for
``accelerate launch`` / ``torchrun``, which start a module in each process."""

import sys

from training.finetune.cli import main

sys.exit(main(sys.argv[1:]))
