"""What a run shows while it works: rich progress bars on stderr, and quiet libraries."""

from __future__ import annotations

import contextlib


class TrainProgress:
    """A rich progress bar (training loss, latest held-out loss, tokens/s, ETA) on stderr; silent
    when disabled."""

    def __init__(self, enabled: bool, total: int, done: int, heldout: float | None = None) -> None:
        self._bar = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("[bold]finetune"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("held-out {task.fields[heldout]}"),
            TextColumn("{task.fields[tps]} tok/s"),
            TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True), transient=False)
        self._bar.start()
        self._task = self._bar.add_task("train", total=total, completed=done, loss="-", tps="-",
                                        heldout=_loss_text(heldout))

    def update(self, step: int, loss: float, tokens_per_s: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=step, loss=f"{loss:.4f}", tps=f"{tokens_per_s:,.0f}")

    def heldout(self, loss: float | None) -> None:
        """Show the held-out loss of the latest evaluation."""
        if self._bar is not None:
            self._bar.update(self._task, heldout=_loss_text(loss))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _loss_text(loss: float | None) -> str:
    return "-" if loss is None else f"{loss:.4f}"


@contextlib.contextmanager
def data_progress(enabled: bool):
    """A files-done bar on stderr while the dataset is built (indexing + retrieval per sample)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]data {task.fields[repo]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("files"), TimeElapsedColumn(), console=Console(stderr=True)) as bar:
        task = bar.add_task("data", total=None, repo="")

        def update(repo: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, repo=repo)

        yield update


def quiet_libraries() -> None:
    """Keep library chatter (weight-loading bars, optional-kernel notices) out of the CLI output."""
    import logging
    import warnings

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
