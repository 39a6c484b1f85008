"""Pure parts of fine-tuning: stage presets and their overrides, data parsing with line numbers, metrics."""

from __future__ import annotations

import json

import pytest
from vlmcli.finetune import stages
from vlmcli.finetune.data import load_examples
from vlmcli.finetune.evaluate import anls, score

from vlmcli.errors import UsageError
from vlmcli.prompts import OCR_PROMPT


def test_presets_follow_the_recipe():
    from vlmcli.model.families.idefics import SMOLVLM

    one, two, three = (stages.STAGES[n].for_family(SMOLVLM) for n in (1, 2, 3))
    assert not one.split and two.split and three.split  # low resolution first, splitting from stage 2
    assert "vision_model" in one.lora_targets and "vision_model" not in three.lora_targets
    assert all(s.full_train == ("connector",) for s in (one, two, three))  # new parameters train fully
    assert stages.STAGES[1].for_family(SMOLVLM) == stages.resolve(1).for_family(SMOLVLM)
    assert three.use_dora and (three.lora_rank, three.lora_alpha) == (8, 8)


def test_precedence_preset_then_file_then_cli():
    resolved = stages.resolve(3, {"lora_rank": 16, "epochs": 2}, {"lora_rank": 32, "epochs": None})
    assert resolved.lora_rank == 32 and resolved.epochs == 2.0 and resolved.lora_alpha == 8


@pytest.mark.parametrize("overrides, message", [
    ({"lora_rnak": 4}, "unknown setting"), ({"lora_rank": "x"}, "is not a int"), ({"use_dora": 1}, "is not a bool"),
    ({"loss_average": "batch"}, "must be one of auto, example, token"),
])
def test_bad_overrides(overrides, message):
    with pytest.raises(UsageError, match=message):
        stages.resolve(2, overrides)


def test_unknown_stage():
    with pytest.raises(UsageError, match="--stage must be one of"):
        stages.resolve(4)


def test_config_file_tables(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('lora_rank = 4\nlearning_rate = 3e-4\n[stage2]\nlora_rank = 12\n[stage3]\nepochs = 5\n')
    assert stages.load_config(path, 2) == {"lora_rank": 12, "learning_rate": 3e-4}
    assert stages.resolve(3, stages.load_config(path, 3)).epochs == 5.0


def _write(tmp_path, rows):
    (tmp_path / "a.png").write_bytes(b"x")
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_three_shapes_are_read(tmp_path):
    path = _write(tmp_path, [
        {"image": "a.png", "question": "Total?", "answer": "42"},
        {"image": {"path": "a.png", "page": 1}, "text": "Hello"},
        {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]},
                      {"role": "assistant", "content": "Hello there"}], "images": ["a.png"]},
    ])
    examples, problems = load_examples(path)
    assert problems == [] and [e.kind for e in examples] == ["qa", "transcription", "chat"]
    assert examples[1].messages[0]["content"][-1]["text"] == OCR_PROMPT  # the same prompt as `vlmcli ocr`
    assert [e.target for e in examples] == ["42", "Hello", "Hello there"]
    assert examples[0].images[0].path == tmp_path / "a.png"


def test_bad_lines_are_reported_with_line_numbers(tmp_path):
    path = _write(tmp_path, [
        {"image": "a.png", "text": "ok"}, "{not json", {"image": "missing.png", "text": "x"},
        {"image": "a.png", "question": "q", "answer": "  "}, {"foo": 1},
        {"messages": [{"role": "user", "content": "no image slot"}, {"role": "assistant", "content": "a"}],
         "images": ["a.png"]},
    ])
    examples, problems = load_examples(path)
    assert len(examples) == 1
    expected = [(2, "not valid JSON"), (3, "missing.png: no such file"), (4, "empty target"),
                (5, "expected 'messages'"), (6, "0 image slot(s) in the messages but 1 image(s) given")]
    assert [p.line_number for p in problems] == [line for line, _ in expected]
    for problem, (_, text) in zip(problems, expected):
        assert text in str(problem) and str(problem).startswith(f"line {problem.line_number}: ")


def test_metrics(tmp_path):
    examples, _ = load_examples(_write(tmp_path, [
        {"image": "a.png", "text": "hello world"}, {"image": "a.png", "question": "q", "answer": "42.00 EUR"}]))
    assert score(examples[0], "hello world") == {"cer": 0.0, "wer": 0.0, "exact_match": 1.0}
    assert score(examples[0], "hallo world")["cer"] == pytest.approx(1 / 11)
    assert score(examples[0], "Hello  world")["exact_match"] == 0.0  # case counts in a transcription
    assert score(examples[1], " 42.00  eur ") == {"exact_match": 1.0, "anls": 1.0}
    assert anls("completely different", "42.00 EUR") == 0.0


def test_show_config_applies_file_then_flags(tmp_path):
    from typer.testing import CliRunner

    from vlmcli.cli import app

    config = tmp_path / "my.toml"
    config.write_text("lora_rank = 12\nepochs = 3\n[stage2]\nlearning_rate = 5e-5\n")
    result = CliRunner().invoke(app, ["finetune", "--stage", "2", "--show-config", "--config", str(config),
                                      "--epochs", "2", "--no-dora", "--model", "some/model"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["stage"]["number"] == 2 and shown["stage"]["split"] is True
    assert (shown["stage"]["lora_rank"], shown["stage"]["epochs"], shown["stage"]["learning_rate"]) == (12, 2.0, 5e-5)
    assert shown["stage"]["use_dora"] is False and shown["model"]["model_id"] == "some/model"


def test_finetune_needs_data_and_output():
    from typer.testing import CliRunner

    from vlmcli.cli import app

    result = CliRunner().invoke(app, ["finetune", "--stage", "3"])
    assert result.exit_code == 2 and "finetune needs --data and --output" in result.stderr


def test_full_finetune_trains_every_weight_without_an_adapter():
    import torch
    from vlmcli.finetune.lora import apply_stage, parameter_groups
    from vlmcli.finetune.stages import resolve

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    stage = resolve(1, {"full_finetune": True, "learning_rate": 3e-4})
    assert apply_stage(model, stage, quantized=False) is model
    assert all(p.requires_grad for p in model.parameters())
    groups = parameter_groups(model, stage)
    assert {g["lr"] for g in groups} == {3e-4} and sum(len(g["params"]) for g in groups) == 4


def test_out_of_memory_while_training_keeps_checkpoints(tmp_path):
    """T5: the Trainer's OOM becomes exit 8 with what to lower; completed checkpoints are not touched."""
    import types

    import pytest
    import torch
    from vlmcli.finetune import train

    from vlmcli.errors import ExitCode, ResourceError

    def out_of_memory(**kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    trainer = types.SimpleNamespace(train=out_of_memory, args=types.SimpleNamespace(output_dir=str(tmp_path)))
    with pytest.raises(ResourceError, match="out of memory while training; completed checkpoints are kept") as caught:
        train._train(trainer, None)
    assert caught.value.exit_code == ExitCode.resource and "--batch-size" in caught.value.hint


def test_the_loss_weighs_every_example_the_same_whatever_its_answer_length():
    """A one-token answer and a four-token answer count equally; prompt positions (-100) and empty rows not at all."""
    from types import SimpleNamespace

    import torch
    from vlmcli.finetune.loss import per_example

    torch.manual_seed(0)
    logits = torch.randn(3, 6, 11)
    labels = torch.tensor([[-100, -100, -100, -100, 4, -100],  # a short answer: one scored token
                           [-100, 1, 2, 3, 5, -100],  # a long one: four
                           [-100] * 6])  # nothing to score (its answer did not fit): left out
    token_loss = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=-100,
                                                   reduction="none")
    short, long = token_loss[0, 3], token_loss[1, :4].mean()
    loss = per_example(SimpleNamespace(logits=logits), labels)
    assert torch.allclose(loss, (short + long) / 2)
    token_mean = (token_loss[0, 3] + token_loss[1, :4].sum()) / 5
    assert not torch.allclose(loss, token_mean)  # transformers' average: the long answer weighs four times as much


def test_auto_averages_per_example_only_when_the_stage_mixes_sources():
    from vlmcli.finetune.train import loss_average

    stage = stages.STAGES[2]
    assert stage.loss_average == "auto"
    assert (loss_average(stage, 1), loss_average(stage, 2)) == ("token", "example")  # replay makes two sources
    assert loss_average(stages.resolve(2, {}, {"loss_average": "token"}), 3) == "token"
