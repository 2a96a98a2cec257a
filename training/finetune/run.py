"""The fine-tuning run, top to bottom.

:func:`finetune` checks everything that can fail cheaply (:mod:`.preflight`) before writing
anything, builds the dataset with :mod:`training.data` into a work dir beside ``--out``
(``NAME.partial``), loads the model (:mod:`.model`), measures held-out loss and next-line
exact match (:mod:`.evaluation`), trains (gradient accumulation, bf16 where native, checkpoints every
N steps (:mod:`.checkpoints`), early stopping on held-out loss, the last step always
evaluated), keeps the best held-out weights, refuses to publish weights that do not beat the
base unless told to, and writes the adapter atomically (:mod:`.adapter`). ``--resume`` restores
model, optimizer, scheduler, RNG states and the data position from the last checkpoint, so an
interrupted run ends exactly where an uninterrupted one would.

Several processes (``accelerate launch`` / ``torchrun``) run data-parallel through
``accelerate``: rank 0 builds the data and writes files, each rank draws its own slice of
every global batch (:class:`.batches.BatchStream`).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import time
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

from repocomplete.model_resolution import weights_sha256
from training import publish
from training.data import DataConfig, build_dataset, load_manifest, read_samples
from training.finetune.adapter import FORMAT, write_adapter
from training.finetune.batches import BatchStream, SampleHealing, collate, tokenize_samples
from training.finetune.checkpoints import list_checkpoints, load_checkpoint, save_checkpoint
from training.finetune.config import (FinetuneConfig, FinetuneError, FinetuneResult, TrainState, check_config,
                                      steps_for_epochs)
from training.finetune.evaluation import (heldout_loss, improvement, next_line_exact_match, refuse_untrained,
                                          track_best)
from training.finetune.memory import peak_memory
from training.finetune.model import (lora_b_all_zero, load_model, load_trainable_state, parameter_digest,
                                     trainable_state)
from training.finetune.preflight import (bf16_supported, check_data_config, check_memory, check_method,
                                         check_out_dir, check_repositories, cuda_available, resolve_precision)
from training.finetune.progress import TrainProgress, data_progress, quiet_libraries
from training.schedule import warmup_cosine


def work_dir(out: Path) -> Path:
    """Where a run keeps its data and checkpoints until the adapter is published."""
    return out.with_name(out.name + ".partial")


def resolve_base(spec: str | None) -> dict:
    """``--base`` as the adapter's metadata records it: the spec, the transformers folder it
    resolves to (a catalogue name or GGUF file is prepared into one once) and, when there is
    one, the sha256 of the GGUF source (the folder's own hash is added when the adapter is written)."""
    from repocomplete.model_resolution import resolve_model

    resolved = resolve_model(spec)
    return {"spec": spec or "default", "label": resolved.label, "name": resolved.name,
            "path": str(resolved.path), "source_sha256": resolved.sha256}


def finetune(repos: list[str | os.PathLike[str]], base: str | None = "default", out: str | os.PathLike[str] | None = None,
             config: FinetuneConfig | None = None, data_config: DataConfig | None = None, *,
             resume: bool = False, force: bool = False, show_progress: bool = True,
             log=print, command: str | None = None) -> FinetuneResult:
    """Fine-tune ``base`` on ``repos`` and write the adapter (or full model) to ``out``.

    ``command``: the command line that started the run, recorded in the adapter's card.
    """
    config = config or FinetuneConfig()
    repo_paths = [Path(r).resolve() for r in repos]
    out_path = Path(out) if out else Path("adapters") / repo_paths[0].name
    out_path = out_path.resolve()
    work = work_dir(out_path)
    cuda = cuda_available()

    # 1. Preflight: nothing is written until all of these pass.
    check_config(config)
    if data_config is not None:
        check_data_config(data_config)
    native_bf16 = bf16_supported(cuda=cuda)
    check_method(config.method, config.precision, cuda=cuda, bf16=native_bf16)
    check_out_dir(out_path)
    if out_path.exists() and not (resume or force):
        raise FinetuneError(f"{out_path} already exists; pass --force to replace it or choose another --out")
    if resume and not list_checkpoints(work / "checkpoints"):
        raise FinetuneError(f"nothing to resume: no checkpoint under {work}")
    check_repositories(repo_paths)
    base_info = resolve_base(base)
    n_params = check_memory(base_info["path"], config.method, cuda=cuda)
    bf16 = resolve_precision(config.precision, cuda=cuda, bf16=native_bf16) == "bf16"
    for target in (out_path, work):   # what a run killed while publishing left behind
        publish.clean_stale(target)

    from accelerate import Accelerator

    # on a GPU accelerate runs the forward pass under bf16 autocast; on a CPU _run does it itself
    accelerator = Accelerator(mixed_precision="bf16" if bf16 and cuda else "no", cpu=not cuda)
    fresh = not work.exists()
    try:
        return _run(repo_paths, base_info, n_params, out_path, work, config, data_config,
                    accelerator, resume=resume, bf16=bf16, show_progress=show_progress, log=log, command=command)
    except BaseException:
        # A run that fails before its first checkpoint leaves nothing behind.
        if fresh and accelerator.is_main_process and not list_checkpoints(work / "checkpoints"):
            shutil.rmtree(work, ignore_errors=True)
        raise


def _prepare_data(repos: list[Path], work: Path, tokenizer, data_config: DataConfig, accelerator,
                  show_progress: bool) -> dict:
    """Build the dataset once (rank 0) into ``work/data``; every rank reads its manifest."""
    data_dir = work / "data"
    if accelerator.is_main_process and not (data_dir / "manifest.json").exists():
        work.mkdir(parents=True, exist_ok=True)
        with data_progress(show_progress) as progress:
            build_dataset(repos, data_dir, data_config, tokenizer=tokenizer, progress=progress)
    accelerator.wait_for_everyone()
    return load_manifest(data_dir)


def _run(repos, base_info: dict, n_params: int, out: Path, work: Path, config: FinetuneConfig,
         data_config: DataConfig | None, accelerator, *, resume: bool, bf16: bool, show_progress: bool,
         log, command: str | None = None) -> FinetuneResult:
    import torch
    from transformers import AutoTokenizer

    from repocomplete.fim import detect_template, get_template

    quiet_libraries()
    main = accelerator.is_main_process
    model_path = base_info["path"]
    random.seed(config.seed)
    torch.manual_seed(config.seed)

    # 2. Data: samples rendered with the base model's FIM template, tokenized once.
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    data_config = data_config or DataConfig(template=None, seed=config.seed,
                                            prompt_tokens=max(64, config.max_seq_len * 3 // 4))
    template = (get_template(data_config.template) if data_config.template
                else detect_template(tokenizer.get_vocab()))
    data_config = replace(data_config, template=template.name)
    manifest = _prepare_data(repos, work, tokenizer, data_config, accelerator, show_progress and main)
    end_token = template.end_tokens[0]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    healing = SampleHealing.for_tokenizer(tokenizer) if config.token_healing else False
    train, heldout = (tokenize_samples(list(read_samples(work / "data", split)), tokenizer, end_token,
                                       config.max_seq_len, heal=healing)
                      for split in ("train", "heldout"))
    eval_loss_set = heldout[: config.eval_samples]
    em_set = sorted(heldout, key=lambda s: (s.kind != "line_rest", s.prompt[-64:]))[: config.em_samples]
    if config.epochs is not None:   # the step count follows the dataset, known only now
        config = replace(config, max_steps=steps_for_epochs(config.epochs, len(train), config.batch_size,
                                                            config.grad_accum, accelerator.num_processes))
        if main:
            log(f"{config.epochs:g} epoch(s) over {len(train)} training samples: {config.max_steps} steps")

    # 3. Model, optimizer and learning-rate schedule.
    cuda = accelerator.device.type == "cuda"
    # GPU: frozen weights in bf16; CPU: fp32 weights, bf16 autocast (matmuls in bf16 on AMX)
    model, targets = load_model(model_path, config, cuda=cuda, bf16=bf16 and cuda)
    autocast = (partial(torch.autocast, device_type="cpu", dtype=torch.bfloat16) if bf16 and not cuda
                else contextlib.nullcontext)
    if config.method != "qlora":   # a 4-bit model is placed by its device_map and refuses .to()
        model.to(accelerator.device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr(), weight_decay=config.weight_decay)
    factor = partial(warmup_cosine, peak=1.0, floor=0.1, warmup=config.warmup_steps, total=config.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw = accelerator.unwrap_model(model)

    def evaluate() -> dict:
        if not config.evaluate:
            return {}
        with torch.random.fork_rng(devices=[]), autocast():
            return {"heldout_loss": heldout_loss(raw, eval_loss_set, pad_id),
                    "heldout_next_line_em": next_line_exact_match(raw, tokenizer, em_set, template.stop,
                                                                  config.max_new_tokens)}

    # 4. The base model's held-out metrics, or the state of the run being resumed.
    checkpoints = work / "checkpoints"
    state = TrainState()
    best: dict | None = None
    if resume:
        state, best = load_checkpoint(list_checkpoints(checkpoints)[-1], model, optimizer, scheduler, accelerator)
        if main:
            log(f"resumed from step {state.step}")
    elif main:
        state.before = evaluate()
        state.best_loss = (state.before or {}).get("heldout_loss")
        if state.best_loss is not None and config.patience and config.eval_every:
            best = trainable_state(raw)   # if training never beats the base, early stopping keeps it
    accelerator.wait_for_everyone()

    # 5. Train.
    stream = BatchStream(len(train), config.batch_size, config.seed, accelerator.process_index, accelerator.num_processes)
    bar = TrainProgress(show_progress and main, config.max_steps, state.step,
                        next((h["heldout_loss"] for h in reversed(state.history) if "heldout_loss" in h),
                             (state.before or {}).get("heldout_loss")))
    step_tokens = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    last_loss = float("nan")
    try:
        while state.step < config.max_steps and not state.stopped_early:
            step = state.step
            total_loss = 0.0
            step_started, step_cpu, tokens_before = time.perf_counter(), time.process_time(), step_tokens
            for micro in range(config.grad_accum):
                batch = collate([train[i] for i in stream.micro_batch(step * config.grad_accum + micro)], pad_id,
                                config.loss_on)
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                sync = micro == config.grad_accum - 1
                with contextlib.nullcontext() if sync else accelerator.no_sync(model):
                    with autocast():   # the forward pass only: backward runs in the forward's dtypes
                        loss = model(**batch).loss / config.grad_accum
                    accelerator.backward(loss)
                total_loss += loss.detach()
                step_tokens += int(batch["attention_mask"].sum())
            accelerator.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            last_loss = float(accelerator.reduce(total_loss, reduction="mean"))
            state.step = step + 1
            elapsed = state.train_seconds + time.perf_counter() - started
            tokens = state.tokens + step_tokens * accelerator.num_processes
            bar.update(state.step, last_loss, tokens / max(elapsed, 1e-9))
            # per-step cost, so a benchmark can leave out the warm-up steps (allocator, first-call kernels)
            state.history.append({"step": state.step, "loss": last_loss,
                                  "tokens": (step_tokens - tokens_before) * accelerator.num_processes,
                                  "seconds": time.perf_counter() - step_started,
                                  "cpu_seconds": time.process_time() - step_cpu})
            # the last step is always evaluated: a run shorter than the interval must not keep step 0 as "best"
            due = bool(config.eval_every) and (state.step % config.eval_every == 0 or state.step == config.max_steps)
            if due and eval_loss_set and config.evaluate:
                best = track_best(state, evaluate() if main else {}, raw, best, config, accelerator)
                bar.heldout(state.history[-1].get("heldout_loss"))
            if config.save_every and state.step % config.save_every == 0 and state.step < config.max_steps:
                state.tokens, state.train_seconds = tokens, elapsed
                state.cpu_seconds += time.process_time() - cpu_started
                step_tokens, started, cpu_started = 0, time.perf_counter(), time.process_time()
                save_checkpoint(checkpoints, model, optimizer, scheduler, state, best, accelerator,
                                keep=config.keep_checkpoints)
    finally:
        bar.close()
    state.tokens += step_tokens * accelerator.num_processes
    state.train_seconds += time.perf_counter() - started
    state.cpu_seconds += time.process_time() - cpu_started

    # 6. Keep the best held-out weights, measure them, and publish only what beats the base.
    if config.param_digest_dir:   # the ranks' own weights, before the main process picks the best
        Path(config.param_digest_dir).mkdir(parents=True, exist_ok=True)
        (Path(config.param_digest_dir) / f"rank-{accelerator.process_index}.txt").write_text(parameter_digest(raw))
    if best is not None:
        load_trainable_state(raw, best)   # early stopping keeps the best held-out weights (main process)
    after = evaluate() if main else {}
    improved = improvement(state.before or {}, after) if main else None
    zero_b = lora_b_all_zero(raw) if main else None
    refuse_untrained(improved, zero_b, state, after, out, config, accelerator, log)
    metrics = {"before": state.before or {}, "after": after, "steps": state.step,
               "final_train_loss": last_loss, "best_step": state.best_step,
               "stopped_early": state.stopped_early, "train_tokens": state.tokens,
               "tokens_per_s": state.tokens / max(state.train_seconds, 1e-9),
               "tokens_per_cpu_s": state.tokens / max(state.cpu_seconds, 1e-9),
               **peak_memory(accelerator.device), "history": state.history}
    if main:
        metadata = {
            "format": FORMAT, "name": out.name, "method": config.method,
            "base_model": {**base_info, "hash": weights_sha256(model_path),
                           "model_type": getattr(raw.config, "model_type", None),
                           "parameters": n_params},
            "template": template.name, "target_modules": targets, "config": asdict(config),
            "data_manifest": manifest, "metrics": metrics,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "world_size": accelerator.num_processes, "improved": improved, "lora_b_all_zero": zero_b,
        }
        write_adapter(out, raw, tokenizer, metadata, config.method, command)
        publish.remove(work)
    accelerator.wait_for_everyone()
    return FinetuneResult(str(out), state.step, state.stopped_early, metrics, manifest, main, improved)
