"""Apply a stage to a loaded model: LoRA/DoRA where the stage says, full training of new parts, the rest frozen."""

from __future__ import annotations

from typing import Any

import torch
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from vlmcli.finetune.stages import Stage

GRADIENT_CHECKPOINTING = {"use_reentrant": False}  # reentrant checkpointing breaks DDP with frozen parameters


def apply_stage(model: Any, stage: Stage, quantized: bool) -> Any:
    """Wrap `model` in a PEFT model for `stage`. DoRA is off under QLoRA, as the Idefics2/SmolVLM recipes do."""
    for parameter in model.parameters():
        parameter.requires_grad = stage.full_finetune
    if stage.full_finetune:
        return model
    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=stage.gradient_checkpointing,
                                                gradient_checkpointing_kwargs=GRADIENT_CHECKPOINTING)
    elif stage.gradient_checkpointing:
        model.enable_input_require_grads()
    config = LoraConfig(
        r=stage.lora_rank, lora_alpha=stage.lora_alpha, lora_dropout=stage.lora_dropout,
        target_modules=stage.lora_targets, modules_to_save=list(stage.full_train) or None,
        use_dora=stage.use_dora and not quantized, init_lora_weights="gaussian",
    )
    return get_peft_model(model, config)


def parameter_groups(model: Any, stage: Stage) -> list[dict]:
    """Optimizer groups: LoRA weights and fully trained modules get their own learning rates; no decay on norms/biases."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            full = "modules_to_save" in name and not stage.full_finetune
            decay = parameter.dim() >= 2
            groups.setdefault((full, decay), []).append(parameter)
    # LoRA groups first: the Trainer logs the first group's learning rate.
    return [
        {"params": params, "lr": stage.full_train_learning_rate if full else stage.learning_rate,
         "weight_decay": stage.weight_decay if decay else 0.0}
        for (full, decay), params in sorted(groups.items(), key=lambda item: item[0])
    ]


def trainable_summary(model: Any) -> dict[str, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable_parameters": trainable, "all_parameters": sum(p.numel() for p in model.parameters())}
