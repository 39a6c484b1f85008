"""`vlmcli finetune`: one stage of the recipe on the Hugging Face Trainer with PEFT.

The same command runs under `torchrun` / `accelerate launch` (DDP): the Trainer
reads the launcher's environment; files other than the Trainer's own are
written by the main process only.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
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
from vlmcli.finetune import checkpoints
from vlmcli.finetune.collate import Collator, validate
from vlmcli.finetune.data import Example, Problem, read_examples
from vlmcli.finetune.evaluate import evaluate
from vlmcli.finetune.lora import (
    GRADIENT_CHECKPOINTING,
    apply_stage,
    parameter_groups,
    trainable_summary,
)
from vlmcli.finetune.runinfo import write_run_info
from vlmcli.finetune.stages import Stage

from vlmcli import model as model_loader
from vlmcli.errors import InputError, ResourceError, TrainingDiverged, UsageError
from vlmcli.progress import NullProgress, Progress
from vlmcli.specs import (
    TRAINING_EVAL_MAX_NEW_TOKENS,
    GenerationSpec,
    ModelSpec,
    PdfSpec,
    Quant,
    SplitSpec,
)


@dataclass(frozen=True)
class FinetuneRequest:
    stage: Stage
    model: ModelSpec  # model.adapter = the earlier stage this one builds on (--from), or None
    data: Path
    output: Path
    eval_data: Path | None = None
    resume: bool = False
    skip_bad_examples: bool = False
    pdf: PdfSpec = PdfSpec()
    eval_max_new_tokens: int = TRAINING_EVAL_MAX_NEW_TOKENS


class NonFiniteLoss(RuntimeError):
    pass


def run(request: FinetuneRequest, progress: Progress | None = None) -> dict:
    """Train one stage; return the summary also written to OUTPUT/run.json."""
    progress = progress or NullProgress()
    train_examples = load_examples(request.data, request.skip_bad_examples, progress)
    eval_examples = load_examples(request.eval_data, request.skip_bad_examples, progress) if request.eval_data else []
    if request.stage.full_finetune and request.model.quantize is not Quant.none:
        raise UsageError("full fine-tuning cannot train quantized weights", hint="drop --quantize, or train LoRA")
    if request.stage.max_minutes and _distributed():
        raise UsageError("max_minutes works in one process only", hint="set max_steps for distributed runs")
    resume_from = _resume_point(request, progress)
    split = SplitSpec(split=request.stage.split, longest_edge_px=request.stage.longest_edge_px, bands=False)
    progress.loading_model(request.model.model_id)
    loaded = model_loader.load(request.model, split, for_training=True,
                               unquantized_modules=tuple(request.stage.full_train))
    progress.model_loaded()
    train_examples = _validated(train_examples, loaded, request, request.data, progress)
    eval_examples = _validated(eval_examples, loaded, request, request.eval_data, progress) if eval_examples else []
    summary = {"examples": len(train_examples), "eval_examples": len(eval_examples)}
    if eval_examples and is_main_process():
        summary["eval_before"] = _evaluate(loaded, eval_examples, request, "before", progress)
    # The adapters' random init must follow the stage's seed, not whatever drew from torch's generator before.
    set_seed(request.stage.seed)
    peft_model = apply_stage(loaded.model, request.stage, quantized=request.model.quantize is not Quant.none)
    summary.update(trainable_summary(peft_model))
    trainer = _trainer(peft_model, loaded, train_examples, request, progress)
    if trainer.is_world_process_zero():
        write_run_info(request, {**summary, "status": "running"})
    result = _train(trainer, resume_from)
    summary.update(global_step=trainer.state.global_step, train_loss=result.training_loss)
    trainer.save_model(str(request.output))  # the adapter; the Trainer writes it on the main process only
    if request.stage.full_finetune and trainer.is_world_process_zero():
        loaded.processor.save_pretrained(str(request.output))  # a whole checkpoint: --model OUTPUT loads it
    if eval_examples and trainer.is_world_process_zero():
        after = dataclasses.replace(loaded, model=peft_model.eval())
        summary["eval_after"] = _evaluate(after, eval_examples, request, "after", progress)
    if trainer.is_world_process_zero():
        write_run_info(request, {**summary, "status": "finished"})
    return summary


def load_examples(path: Path, skip_bad: bool, progress: Progress | None = None) -> list[Example]:
    """Read and check a JSONL file (format, fields, files); bad lines fail or are skipped and reported."""
    if not path.is_file():
        raise InputError(f"{path}: no such data file")
    examples, problems = read_examples(path)
    return _apply_policy(path, examples, problems, skip_bad, progress or NullProgress())


def _validated(examples: list[Example], loaded, request: FinetuneRequest, path: Path,
               progress: Progress) -> list[Example]:
    good, problems = validate(examples, loaded.processor, loaded.image_token_id, loaded.max_input_px,
                              request.pdf, request.stage.max_length)
    return _apply_policy(path, good, problems, request.skip_bad_examples, progress)


def _apply_policy(path: Path, good: list[Example], problems: list[Problem], skip_bad: bool,
                  progress: Progress) -> list[Example]:
    if problems and not skip_bad:
        listed = "; ".join(str(p) for p in problems[:5]) + ("; …" if len(problems) > 5 else "")
        raise InputError(f"{path}: {len(problems)} bad example(s): {listed}",
                         hint="fix them, or pass --on-bad-example skip to train without them")
    for problem in problems:
        progress.note(f"{path}: skipping {problem}")
    if not good:
        raise InputError(f"{path}: no usable examples")
    return good


def _resume_point(request: FinetuneRequest, progress: Progress) -> Path | None:
    folder = request.output / "checkpoints"
    if not request.resume:
        if checkpoints.checkpoints(folder) or any((request.output / name).exists()
                                                  for name in ("adapter_config.json", "config.json")):
            raise UsageError(f"{request.output} already holds a training run",
                             hint="pass --resume to continue it, or choose another --output")
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


def _trainer(peft_model, loaded, examples: list[Example], request: FinetuneRequest, progress: Progress) -> Trainer:
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
    )
    optimizer = torch.optim.AdamW(parameter_groups(peft_model, stage), lr=stage.learning_rate)
    collator = Collator(loaded.processor, loaded.image_token_id, loaded.max_input_px, request.pdf)
    trainer = _Trainer(model=peft_model, args=args, train_dataset=_ListDataset(examples), data_collator=collator,
                       optimizers=(optimizer, None),
                       callbacks=[_Callbacks(progress, run_identity(request), stage.max_minutes * 60)])
    trainer.remove_callback(PrinterCallback)  # it prints logs to stdout, which carries results only
    return trainer


def _distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """Rank 0 under torchrun/accelerate (they set RANK), or a plain single process."""
    return int(os.environ.get("RANK", "0")) == 0


def _train(trainer: Trainer, resume_from: Path | None):
    try:
        return trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except NonFiniteLoss as exc:
        latest, _ = checkpoints.latest_complete(Path(trainer.args.output_dir))
        kept = f"the last good checkpoint is {latest}" if latest else "no checkpoint had been saved yet"
        raise TrainingDiverged(f"training stopped: {exc}; {kept}",
                               hint="lower --learning-rate, then continue with --resume") from None
    except torch.OutOfMemoryError:
        raise ResourceError("out of memory while training; completed checkpoints are kept",
                            hint="lower --batch-size or --longest-edge, or use --quantize 4bit") from None


def _evaluate(loaded, examples: list[Example], request: FinetuneRequest, label: str, progress: Progress) -> dict:
    generation = GenerationSpec(max_new_tokens=request.eval_max_new_tokens)
    report = evaluate(loaded, examples, request.pdf, generation)
    metrics = ", ".join(f"{key}={value:.4g}" for key, value in report.overall.items())
    progress.note(f"eval {label} training: {metrics}")
    return report.overall


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.items[index]


class _Trainer(Trainer):
    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not math.isfinite(float(loss)):
            raise NonFiniteLoss(f"the loss became {float(loss)} at step {self.state.global_step + 1}")
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

    def on_step_end(self, args, state, control, **kwargs):
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
