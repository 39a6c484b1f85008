"""`vlmcli finetune`: one stage of the recipe on the Hugging Face Trainer with PEFT.

The same command runs under `torchrun` / `accelerate launch` (DDP): the Trainer
reads the launcher's environment; files other than the Trainer's own are
written by the main process only.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from transformers import (
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from vlmcli.finetune import checkpoints, loss, mixture
from vlmcli.finetune.collate import Collator
from vlmcli.finetune.data import Example
from vlmcli.finetune.evaluate import evaluate_sets
from vlmcli.finetune.lora import (
    GRADIENT_CHECKPOINTING,
    apply_stage,
    parameter_groups,
    trainable_summary,
)
from vlmcli.finetune.mixture import Source
from vlmcli.finetune.request import FinetuneRequest
from vlmcli.finetune.runinfo import write_run_info
from vlmcli.finetune.sampler import MixtureSampler
from vlmcli.finetune.sources import (
    Sourced,
    effective_resolution,
    load_sources,
    replay_cut,
    resolution_views,
    validate_sources,
    view_of,
)
from vlmcli.finetune.stages import Stage
from vlmcli.finetune.summary import EvalSetReport, Metrics, SourceReport, TrainingSummary

from vlmcli import model as model_loader
from vlmcli.errors import OutputError, ResourceError, TrainingDiverged, UsageError
from vlmcli.files import TEMP_MARK, check_writable_folder
from vlmcli.model.adapters import RUN_FILE
from vlmcli.progress import NullProgress, Progress
from vlmcli.specs import GenerationSpec, Quant, SplitSpec


class NonFinite(RuntimeError):
    """The loss, or the weights after an update, stopped being finite."""


def run(request: FinetuneRequest, progress: Progress | None = None) -> TrainingSummary:
    """Train one stage; return the summary also written to OUTPUT/run.json."""
    progress = progress or NullProgress()
    request = request.for_family()
    stage = request.stage
    check_output(request.output, request.resume)
    train, evals = _load_data(request, progress)
    resume_from = _resume_point(request, progress)
    split = SplitSpec(split=stage.split, longest_edge_px=stage.longest_edge_px, bands=False)
    progress.loading_model(request.model.model_id)
    loaded = model_loader.load(request.model, split, for_training=True, unquantized_modules=tuple(stage.full_train))
    progress.model_loaded()
    views = resolution_views(loaded, [item.source for item in train + evals])
    checked = dict(pdf=request.pdf, max_length=stage.max_length, skip_bad=request.skip_bad_examples,
                   progress=progress)
    train = validate_sources(train, loaded, views, **checked)
    evals = validate_sources(evals, loaded, views, **checked) if evals else []
    summary = _describe(train, evals, loaded, views, loss_average(stage, len(train)))
    eval_sets = [(report.name, view_of(loaded, views, item.source), item.examples)
                 for report, item in zip(summary.eval_data, evals)]
    if eval_sets and is_main_process():
        summary = replace(summary, eval_before=_evaluate(eval_sets, request, None, progress))
    # The adapters' random init must follow the stage's seed, not whatever drew from torch's generator before.
    set_seed(stage.seed)
    peft_model = apply_stage(loaded.model, stage, quantized=request.model.quantize is not Quant.none)
    summary = replace(summary, **trainable_summary(peft_model))
    sampler = MixtureSampler([len(item.examples) for item in train], [report.share for report in summary.data],
                             summary.draws_per_epoch, stage.seed)
    trainer = _trainer(peft_model, loaded, views, train, sampler, request, progress,
                       per_example=summary.loss_average == "example")
    if trainer.is_world_process_zero():
        write_run_info(request.output, stage, request.model, summary, "running")
    result = _train(trainer, resume_from)
    summary = replace(summary, global_step=trainer.state.global_step, train_loss=result.training_loss)
    trainer.save_model(str(request.output))  # the adapter; the Trainer writes it on the main process only
    if stage.full_finetune and trainer.is_world_process_zero():
        loaded.processor.save_pretrained(str(request.output))  # a whole checkpoint: --model OUTPUT loads it
    if eval_sets and trainer.is_world_process_zero():
        trained = [(name, replace(view, model=peft_model.eval()), examples) for name, view, examples in eval_sets]
        summary = replace(summary, eval_after=_evaluate(trained, request, summary.eval_before or {}, progress))
    if trainer.is_world_process_zero():
        write_run_info(request.output, stage, request.model, summary, "finished")
    return summary


def _load_data(request: FinetuneRequest, progress: Progress) -> tuple[list[Sourced], list[Sourced]]:
    """Every source and evaluation set loaded and checked before the model loads; replayed sources cut to size."""
    stage = request.stage
    train = load_sources(request.data, request.skip_bad_examples, progress)
    evals = load_sources(request.eval_data, request.skip_bad_examples, progress) if request.eval_data else []
    mixture.set_names(request.eval_data)  # two sets of one name fail here, not after loading
    if stage.full_finetune and request.model.quantize is not Quant.none:
        raise UsageError("full fine-tuning cannot train quantized weights", hint="drop --quantize, or train LoRA")
    if stage.max_minutes and _distributed():
        raise UsageError("max_minutes works in one process only", hint="set max_steps for distributed runs")
    sizes = [len(item.examples) for item in train]
    draws = _planned_draws(stage, mixture.draws_per_epoch(request.data, sizes))
    return replay_cut(train, mixture.shares(request.data, sizes), draws, stage.seed), evals


def load_checked_examples(path: Path, skip_bad: bool, progress: Progress | None = None) -> list[Example]:
    """Load and check a JSONL file (format, fields, files); bad lines fail or are skipped and reported."""
    return load_sources((Source(path),), skip_bad, progress)[0].examples


def _planned_draws(stage: Stage, draws_per_epoch: int) -> int:
    """How many examples the stage will draw (fewer if max_minutes ends it early)."""
    if stage.max_steps > 0:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        return stage.max_steps * stage.batch_size * stage.grad_accum * world_size
    return math.ceil(stage.epochs * draws_per_epoch)


def _describe(train: list[Sourced], evals: list[Sourced], loaded, views: dict, average: str) -> TrainingSummary:
    """The mixture as trained (shares, examples, the resolution each source was read at), for run.json."""
    sources = tuple(item.source for item in train)
    sizes = [len(item.examples) for item in train]
    data = tuple(SourceReport.of(item.source, share, size, effective_resolution(loaded, views, item.source))
                 for item, share, size in zip(train, mixture.shares(sources, sizes), sizes))
    names = mixture.set_names(tuple(item.source for item in evals))
    eval_data = tuple(EvalSetReport.of(item.source, name, len(item.examples),
                                       effective_resolution(loaded, views, item.source))
                      for item, name in zip(evals, names))
    return TrainingSummary(examples=sum(sizes), eval_examples=sum(len(item.examples) for item in evals), data=data,
                           draws_per_epoch=mixture.draws_per_epoch(sources, sizes), eval_data=eval_data,
                           loss_average=average)


def check_output(output: Path, resume: bool) -> None:
    """Before the data is loaded and the model loads: --output must be a writable folder, and a new or empty one
    unless --resume continues the run in it (the adapter, its model card and run.json would replace files of the
    same names)."""
    check_writable_folder(output, "--output", make=False)
    if resume or not output.exists() or not is_main_process():  # other ranks: rank 0 may be writing run.json
        return
    held = sorted(path.name for path in output.iterdir() if TEMP_MARK not in path.name)
    if held:
        is_run = any(name in held for name in ("checkpoints", "adapter_config.json", "config.json", RUN_FILE))
        raise OutputError(f"{output}: already holds {'a training run' if is_run else 'files, such as ' + held[0]}",
                          hint="pass --resume to continue a run there, or choose a new or empty --output folder")


def _resume_point(request: FinetuneRequest, progress: Progress) -> Path | None:
    folder = request.output / "checkpoints"
    if not request.resume:
        return None
    latest, notes = checkpoints.latest_complete(folder, run_identity(request))
    for note in notes:
        progress.note(note)
    if latest is None:
        progress.note("no complete checkpoint to resume from: starting at step 0")
    return latest


def run_identity(request: FinetuneRequest) -> dict:
    """What makes a checkpoint this run's: resuming another run's optimizer state would be silently wrong."""
    stage = request.stage
    return {"base_model": request.model.model_id, "revision": request.model.revision,
            "quantize": request.model.quantize.value, "stage": stage.number, "lora_rank": stage.lora_rank,
            "from_adapter": str(request.model.adapter.resolve()) if request.model.adapter else None}


def _trainer(peft_model, loaded, views: dict, train: list[Sourced], sampler: MixtureSampler,
             request: FinetuneRequest, progress: Progress, per_example: bool) -> Trainer:
    stage = request.stage
    args = TrainingArguments(
        output_dir=str(request.output / "checkpoints"), seed=stage.seed, data_seed=stage.seed,
        per_device_train_batch_size=stage.batch_size, gradient_accumulation_steps=stage.grad_accum,
        num_train_epochs=stage.epochs, max_steps=stage.max_steps, learning_rate=stage.learning_rate,
        warmup_steps=stage.warmup_ratio, weight_decay=stage.weight_decay, max_grad_norm=1.0,
        logging_steps=stage.logging_steps, logging_nan_inf_filter=False,
        save_strategy="steps", save_steps=stage.save_steps, save_total_limit=2,
        activation_checkpointing=stage.gradient_checkpointing, activation_checkpointing_kwargs=GRADIENT_CHECKPOINTING,
        use_cpu=loaded.device == "cpu", ddp_backend="gloo" if loaded.device == "cpu" and _distributed() else None,
        ddp_find_unused_parameters=False, bf16=loaded.dtype == torch.bfloat16 and loaded.device != "cpu",
        remove_unused_columns=False, report_to="none", disable_tqdm=True,
        dataloader_num_workers=stage.dataloader_workers,
        # A per-example mean is already a mean: scaling it by the process count would count it twice under DDP.
        average_tokens_across_devices=not per_example,
    )
    optimizer = torch.optim.AdamW(parameter_groups(peft_model, stage), lr=stage.learning_rate)
    collator = Collator(loaded.processor, loaded.image_token_id, loaded.max_input_px, request.pdf,
                        views={key: (view.processor, view.max_input_px) for key, view in views.items()},
                        family=loaded.family)
    examples = [example for item in train for example in item.examples]  # in source order, as the sampler counts
    trainer = _Trainer(model=peft_model, args=args, train_dataset=_ListDataset(examples), data_collator=collator,
                       optimizers=(optimizer, None), compute_loss_func=loss.per_example if per_example else None,
                       callbacks=[_Callbacks(progress, run_identity(request), stage.max_minutes * 60)])
    if per_example:
        trainer.loss_is_scaled_for_ga = False  # a mean per micro-batch: the Trainer divides by the accumulation steps
    trainer.mixture_sampler = sampler
    trainer.remove_callback(PrinterCallback)  # it prints logs to stdout, which carries results only
    return trainer


def loss_average(stage: Stage, sources: int) -> str:
    """The stage's loss average, "auto" resolved: per example when it draws from several sources."""
    if stage.loss_average != "auto":
        return stage.loss_average
    return "example" if sources > 1 else "token"


def _distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """Rank 0 under torchrun/accelerate (they set RANK), or a plain single process."""
    return int(os.environ.get("RANK", "0")) == 0


def _train(trainer: Trainer, resume_from: Path | None):
    try:
        return trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except NonFinite as exc:
        latest, _ = checkpoints.latest_complete(Path(trainer.args.output_dir))
        kept = f"the last good checkpoint is {latest}" if latest else "no checkpoint had been saved yet"
        raise TrainingDiverged(f"training stopped: {exc}; {kept}",
                               hint="lower --learning-rate, then continue with --resume") from None
    except torch.OutOfMemoryError:
        raise ResourceError("out of memory while training; completed checkpoints are kept",
                            hint="lower --batch-size or --longest-edge, or use --quantize 4bit") from None


def _evaluate(sets: list[tuple], request: FinetuneRequest, before: dict | None,
              progress: Progress) -> dict[str, Metrics]:
    generation = GenerationSpec(max_new_tokens=request.eval_max_new_tokens)
    return evaluate_sets(sets, request.pdf, generation, before, progress)


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.items[index]


class _Trainer(Trainer):
    mixture_sampler: MixtureSampler | None = None

    def _get_train_sampler(self, train_dataset=None):
        if self.mixture_sampler is None:
            return super()._get_train_sampler(train_dataset)
        return self.mixture_sampler

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not math.isfinite(float(loss)):
            raise NonFinite(f"the loss became {float(loss)} at step {self.state.global_step + 1}")
        return loss


class _Callbacks(TrainerCallback):
    """Progress reports, and the completion marker written after each checkpoint is fully saved."""

    def __init__(self, progress: Progress, run: dict, budget_s: float = 0.0) -> None:
        self.progress, self.run, self.budget_s = progress, run, budget_s
        self.started = time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()
        if state.is_world_process_zero:
            self.progress.started(state.max_steps, "steps", done=state.global_step)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        # Before this step's checkpoint is saved: an update can make the weights non-finite while the loss that
        # led to it was finite (an infinite learning rate does at step 1), and such an adapter answers nothing.
        if model is not None and not all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.requires_grad):
            raise NonFinite(f"the trained weights became non-finite at step {state.global_step}")
        if state.is_world_process_zero:
            self.progress.advanced(state.global_step)
        if self.budget_s and time.monotonic() - self.started > self.budget_s:
            control.should_training_stop = True
            if state.is_world_process_zero:
                self.progress.note(f"max_minutes reached at step {state.global_step}; saving")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs and "loss" in logs:
            self.progress.note(f"step {state.global_step}: loss {logs['loss']:.4f}, "
                               f"lr {logs.get('learning_rate'):.3g}")
            self.progress.advanced(state.global_step, {"loss": logs["loss"]})

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            checkpoints.mark_complete(folder, state.global_step, self.run)
