"""Fine-tuning on tiny real checkpoints (CPU): stages, learning, masking, QLoRA, resume, export, DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import load_run
from PIL import Image
from typer.testing import CliRunner
from vlmcli.finetune import checkpoints
from vlmcli.finetune.collate import IGNORE_INDEX, Collator
from vlmcli.finetune.data import load_examples
from vlmcli.finetune.mixture import Source
from vlmcli.finetune.stages import resolve
from vlmcli.finetune.request import FinetuneRequest
from vlmcli.finetune.train import run, run_identity

from vlmcli.cli import app
from vlmcli.errors import CheckpointError, ExitCode, TrainingDiverged
from vlmcli.progress import NullProgress
from vlmcli.specs import (
    DType,
    ModelSpec,
    PdfSpec,
    Quant,
    RunSpec,
    SplitSpec,
)

pytestmark = pytest.mark.model
COLORS = {"red": "cat", "green": "dog", "blue": "book", "black": "image"}  # one token each in the tiny vocabulary
FAST = {"max_steps": 6, "save_steps": 3, "logging_steps": 1, "batch_size": 2, "grad_accum": 1, "lora_rank": 4}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Four solid-colour pages, each with a question and a transcription, plus a PDF page."""
    folder = tmp_path_factory.mktemp("data")
    rows = []
    for color, word in COLORS.items():
        Image.new("RGB", (64, 48), color).save(folder / f"{color}.png")
        rows.append({"image": f"{color}.png", "question": "What is this?", "answer": word})
        rows.append({"image": f"{color}.png", "text": f"{word} {word}"})
    Image.new("RGB", (60, 80), "white").save(folder / "doc.pdf", save_all=True,
                                             append_images=[Image.new("RGB", (60, 80), "red")])
    rows.append({"image": "doc.pdf", "page": 2, "text": "cat cat"})
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder / "train.jsonl"


def _request(checkpoint, dataset, output, stage=3, model_kwargs=None, **overrides) -> FinetuneRequest:
    spec = ModelSpec(model_id=str(checkpoint), offline=True, **(model_kwargs or {}))
    return FinetuneRequest(stage=resolve(stage, {}, {**FAST, **overrides}), model=spec, data=(Source(dataset),),
                           output=output)


def _cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_label_masking_token_by_token(tiny_idefics3, tiny_idefics2, dataset):
    for checkpoint in (tiny_idefics3, tiny_idefics2):
        loaded = load_run(RunSpec(model=ModelSpec(model_id=str(checkpoint), offline=True)))
        examples, _ = load_examples(dataset)
        collate = Collator(loaded.processor, loaded.image_token_id, loaded.max_input_px, PdfSpec())
        batch = collate(examples[:2])  # a question (short) and a transcription (longer): padding in row 0
        tokenizer = loaded.processor.tokenizer
        for row, example in enumerate(examples[:2]):
            ids, labels, mask = batch["input_ids"][row], batch["labels"][row], batch["attention_mask"][row]
            answer = (labels != IGNORE_INDEX).nonzero().flatten()
            start, end = int(answer[0]), int(answer[-1]) + 1
            assert answer.tolist() == list(range(start, end)), "one contiguous answer span"
            assert torch.equal(labels[start:end], ids[start:end])
            assert tokenizer.decode(ids[start:end]) == f" {example.target}<end_of_utterance>\n"
            prompt = tokenizer.decode(ids[:start])
            assert prompt.endswith("Assistant:") and "<image>" in prompt
            assert (labels[ids == loaded.image_token_id] == IGNORE_INDEX).all()
            assert (labels[mask == 0] == IGNORE_INDEX).all()
        assert (batch["attention_mask"][0] == 0).any(), "the shorter row is padded"


def test_mixed_resolutions_collate_and_each_row_reads_as_alone(tiny_idefics3, dataset):
    """A glyph-like source without splitting and a page-like one split into sub-images share one batch."""
    from dataclasses import replace

    from vlmcli.finetune.sources import resolution_views

    loaded = load_run(RunSpec(model=ModelSpec(model_id=str(tiny_idefics3), offline=True, dtype=DType.float32)))
    small, large = Source(dataset, split=False, longest_edge_px=32), Source(dataset, split=True, longest_edge_px=64)
    views = resolution_views(loaded, [small, large])
    collate = Collator(loaded.processor, loaded.image_token_id, loaded.max_input_px, PdfSpec(),
                       views={key: (view.processor, view.max_input_px) for key, view in views.items()})
    example = load_examples(dataset)[0][1]  # a transcription of a 64x48 page
    rows = [replace(example, resolution=small.resolution), replace(example, resolution=large.resolution)]
    batch = collate(rows)
    image_tokens = (batch["input_ids"] == loaded.image_token_id).sum(dim=1).tolist()
    assert image_tokens == [4, 20] and batch["pixel_values"].shape[1] == 5  # 1 image; 2x2 sub-images + global
    assert loaded.processor.image_processor.do_image_splitting is True  # the loaded processor is not changed
    with torch.no_grad():
        mixed = loaded.model(**batch).logits
        for row, alone in enumerate(rows):
            single = collate([alone])
            length = single["input_ids"].shape[1]
            assert torch.allclose(mixed[row, :length], loaded.model(**single).logits[0], atol=1e-4)


def test_the_stage_seed_alone_decides_the_run(tiny_idefics3, dataset, tmp_path):
    """Whatever drew from torch's generator earlier in the process, the same seed trains the same adapter."""
    from safetensors.torch import load_file

    adapters = []
    for name, earlier_seed in (("a", 1), ("b", 2)):
        torch.manual_seed(earlier_seed)
        run(_request(tiny_idefics3, dataset, tmp_path / name, max_steps=1, batch_size=2))
        adapters.append(load_file(tmp_path / name / "adapter_model.safetensors"))
    assert adapters[0].keys() == adapters[1].keys() and adapters[0]
    assert all(torch.equal(adapters[0][key], adapters[1][key]) for key in adapters[0])


class _Recorder(NullProgress):
    """Keeps what training reports: the loss at each logged step, and the notes."""

    def __init__(self) -> None:
        self.losses: dict[int, float] = {}
        self.notes: list[str] = []

    def advanced(self, done, metrics=None) -> None:
        if metrics:
            self.losses[done] = metrics["loss"]

    def note(self, text, *, detail=False) -> None:
        self.notes.append(text)


def test_training_learns(tiny_idefics3, dataset, tmp_path):
    """Overfit eight examples: the loss falls clearly and the answers move toward the targets."""
    request = _request(tiny_idefics3, dataset, tmp_path / "run", max_steps=60, batch_size=4, learning_rate=3e-2,
                       full_train_learning_rate=1e-2, full_train=["connector", "lm_head"], lora_rank=16,
                       lora_alpha=32)
    request = FinetuneRequest(**{**request.__dict__, "eval_data": (Source(dataset),), "eval_max_new_tokens": 8})
    progress = _Recorder()
    summary = run(request, progress)
    losses = list(progress.losses.values())
    assert losses[-1] < 0.5 * losses[0], losses
    before, after = summary.eval_before["train"], summary.eval_after["train"]
    assert after["cer"] < before["cer"] and after["anls"] > before["anls"]


@pytest.mark.parametrize("average", ["example", "token"])
def test_the_loss_of_a_step_is_the_same_with_gradient_accumulation(tiny_idefics3, dataset, tmp_path, average):
    """Two examples in one batch, or one per micro-batch over two: the same draws, the same first loss."""
    losses = []
    for batch_size, grad_accum in ((2, 1), (1, 2)):
        progress = _Recorder()
        run(_request(tiny_idefics3, dataset, tmp_path / f"{average}{batch_size}", max_steps=1, batch_size=batch_size,
                     grad_accum=grad_accum, logging_steps=1, loss_average=average), progress)
        losses.append(progress.losses[1])
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_three_stages_chain_and_ask_uses_the_adapter(tiny_idefics3, dataset, tmp_path, page_png):
    common = ["--data", dataset, "--max-steps", "2", "--save-steps", "2", "--lora-rank", "4", "--batch-size", "2",
              "--grad-accum", "1", "--offline"]
    first = _cli("finetune", "--stage", "1", "-o", tmp_path / "s1", "--model", tiny_idefics3, *common)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["global_step"] == 2
    second = _cli("finetune", "--stage", "2", "-o", tmp_path / "s2", "--from", tmp_path / "s1", *common)
    held_out = tmp_path / "held.jsonl"
    held_out.write_text("".join(line.replace('"red.png"', f'"{dataset.parent / "red.png"}"') + "\n"
                                for line in dataset.read_text().splitlines()[:2]))
    third = _cli("finetune", "--stage", "3", "-o", tmp_path / "s3", "--from", tmp_path / "s2", *common,
                 "--eval-data", held_out, "--eval-data", f"{held_out}:name=unsplit,split=false",
                 "--eval-max-new-tokens", "4")
    assert second.exit_code == 0 and third.exit_code == 0, second.output + third.output
    run_info = json.loads((tmp_path / "s3" / "run.json").read_text())
    assert run_info["model"]["model_id"] == str(tiny_idefics3) and run_info["status"] == "finished"
    assert run_info["parent_adapter"] == str((tmp_path / "s2").resolve())
    assert run_info["stage"]["number"] == 3 and run_info["stage"]["lora_rank"] == 4
    # Stage 3 replays by default what stage 2 trained on: stage 2's data and, as stage 2 replayed it, stage 1's,
    # an equal part each, each at the resolution it was trained at.
    mix = [(d["share"], d["split"], d["replay_of"], d["examples"]) for d in run_info["data"]]
    assert mix == [(0.5, True, None, 9), (0.25, True, str((tmp_path / "s2").resolve()), 1),
                   (0.25, False, str((tmp_path / "s1").resolve()), 1)]  # replay cut to its 4 * share draws
    assert run_info["loss_average"] == "example"  # several sources: each example weighs the same (auto)
    # Every evaluation set is reported before and after, in the summary and on stderr.
    summary = json.loads(third.stdout)
    assert set(summary["eval_before"]) == set(summary["eval_after"]) == {"held", "unsplit"}
    assert summary["eval_after"]["unsplit"]["image_tokens"] < summary["eval_after"]["held"]["image_tokens"]
    assert "eval before training, unsplit (2 examples): cer=" in third.stderr
    assert "eval after training, unsplit (2 examples): cer " in third.stderr and " -> " in third.stderr
    base = _cli("ask", page_png, "What is this?", "--model", tiny_idefics3, "--offline", "--dtype", "float32")
    adapted = _cli("ask", page_png, "What is this?", "--model", tiny_idefics3, "--offline", "--dtype", "float32",
                   "--adapter", tmp_path / "s3")
    assert adapted.exit_code == 0 and adapted.stdout != base.stdout


def test_qlora_step_on_cpu(tiny_idefics3, dataset, tmp_path):
    import bitsandbytes as bnb

    request = _request(tiny_idefics3, dataset, tmp_path / "q", model_kwargs={"quantize": Quant.nf4}, max_steps=1)
    summary = run(request)
    assert summary.global_step == 1 and torch.isfinite(torch.tensor(summary.train_loss))
    config = json.loads((tmp_path / "q" / "adapter_config.json").read_text())
    assert config["use_dora"] is False  # no DoRA under QLoRA, as in the recipes
    assert config["base_model_name_or_path"] == str(tiny_idefics3)  # PEFT tools find the base from this
    loaded = load_run(RunSpec(model=ModelSpec(model_id=str(tiny_idefics3), offline=True,
                                                                quantize=Quant.nf4, adapter=tmp_path / "q")))
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in loaded.model.modules())


def test_resume_matches_an_uninterrupted_run(tiny_idefics3, dataset, tmp_path, monkeypatch):
    """T1 + T3: killed while saving checkpoint-6 (weights written, optimizer not), resumed from checkpoint-3."""
    from transformers import Trainer

    straight = _Recorder()
    run(_request(tiny_idefics3, dataset, tmp_path / "a"), straight)

    original = Trainer._save_optimizer_and_scheduler

    def killed_while_saving_step_6(self, output_dir):
        if self.state.global_step == 6:
            raise KeyboardInterrupt  # the adapter of checkpoint-6 is on disk; its optimizer state is not
        return original(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", killed_while_saving_step_6)
    with pytest.raises(KeyboardInterrupt):
        run(_request(tiny_idefics3, dataset, tmp_path / "b"))
    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", original)
    half_saved = tmp_path / "b" / "checkpoints" / "checkpoint-6"
    assert (half_saved / "adapter_model.safetensors").is_file() and not (half_saved / checkpoints.MARKER).exists()
    resumed = _Recorder()
    request = FinetuneRequest(**{**_request(tiny_idefics3, dataset, tmp_path / "b").__dict__, "resume": True})
    summary = run(request, resumed)
    assert "checkpoint-6 was interrupted while saving (no completion marker); skipped" in resumed.notes
    assert summary.global_step == 6 and sorted(resumed.losses) == [4, 5, 6]
    for step in (4, 5, 6):
        assert resumed.losses[step] == pytest.approx(straight.losses[step], rel=1e-3)
    checkpoints.verify(half_saved)  # saved again, completely, by the resumed run


def test_damaged_checkpoints(tiny_idefics3, dataset, tmp_path):
    output = tmp_path / "run"
    run(_request(tiny_idefics3, dataset, output))
    folder = output / "checkpoints"
    (folder / "checkpoint-6" / checkpoints.MARKER).unlink()  # as if killed while saving step 6
    identity = run_identity(_request(tiny_idefics3, dataset, output))
    latest, notes = checkpoints.latest_complete(folder, identity)
    assert latest.name == "checkpoint-3" and "interrupted while saving" in notes[0]
    # T2: a checkpoint another run wrote (here: another LoRA rank) is refused with the difference.
    with pytest.raises(CheckpointError, match=r"written by another training run: lora_rank 4 \(this run: 8\)"):
        checkpoints.latest_complete(folder, {**identity, "lora_rank": 8})
    # T7: a pickle that carries code is refused by weights-only loading, and its code never runs.
    _plant_pickle(folder / "checkpoint-3", "optimizer.pt", tmp_path / "pwned")
    with pytest.raises(CheckpointError, match="optimizer.pt: refused by torch's weights-only loading"):
        checkpoints.latest_complete(folder, identity)
    assert not (tmp_path / "pwned").exists()
    shutil.copy(folder / "checkpoint-3" / "optimizer.pt.good", folder / "checkpoint-3" / "optimizer.pt")
    weights = folder / "checkpoint-3" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="adapter_model.safetensors has 100 bytes"):
        checkpoints.latest_complete(folder)
    result = _cli("finetune", "--stage", "3", "--data", dataset, "-o", output, "--model", tiny_idefics3,
                  "--offline", "--resume", "--max-steps", "6")
    assert result.exit_code == ExitCode.checkpoint and "damaged" in result.stderr


class _Payload:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return os.mkdir, (str(self.target),)


def _plant_pickle(checkpoint: Path, name: str, target: Path) -> None:
    """Replace a checkpoint pickle by one whose unpickling creates `target`, and fix the marker's size as an
    attacker would (so the size check alone cannot catch it)."""
    shutil.copy(checkpoint / name, checkpoint / f"{name}.good")
    torch.save({"state": _Payload(target)}, checkpoint / name)
    marker = json.loads((checkpoint / checkpoints.MARKER).read_text())
    marker["files"][name] = (checkpoint / name).stat().st_size
    (checkpoint / checkpoints.MARKER).write_text(json.dumps(marker))


def test_non_finite_loss_stops_training(tiny_idefics3, dataset, tmp_path, monkeypatch):
    from vlmcli.finetune import train

    original = train._Trainer.compute_loss

    def poisoned(self, *args, **kwargs):
        loss = original(self, *args, **kwargs)
        return loss * float("nan") if self.state.global_step >= 4 else loss

    monkeypatch.setattr(train._Trainer, "compute_loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 5; the last good checkpoint is .*checkpoint-3"):
        run(_request(tiny_idefics3, dataset, tmp_path / "nan"))


def test_bad_data_fails_before_training_with_line_numbers(tiny_idefics3, dataset, tmp_path):
    shutil.copytree(dataset.parent, tmp_path / "data")
    bad = tmp_path / "data" / "bad.jsonl"
    bad.write_text(dataset.read_text() + '{"image": "nowhere.png", "text": "x"}\n{"text": 5}\n')
    args = ["finetune", "--stage", "3", "--data", bad, "-o", tmp_path / "o", "--model", tiny_idefics3, "--offline"]
    result = _cli(*args)
    assert result.exit_code == ExitCode.input
    assert "2 bad example(s): line 10:" in result.stderr and "line 11:" in result.stderr
    assert not (tmp_path / "o").exists()


def test_export_merges_and_loads(tiny_idefics3, dataset, tmp_path, page_png):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    run(_request(tiny_idefics3, dataset, tmp_path / "run", max_steps=2))
    result = _cli("export", "--adapter", tmp_path / "run", "-o", tmp_path / "merged", "--dtype", "float32",
                  "--offline")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["smoke_test_image_tokens"] > 0
    assert (tmp_path / "merged" / "chat_template.jinja").is_file()
    question = ["ask", page_png, "What is this?", "--offline", "--dtype", "float32"]
    merged = _cli(*question, "--model", tmp_path / "merged")
    adapted = _cli(*question, "--model", tiny_idefics3, "--adapter", tmp_path / "run")
    assert merged.exit_code == 0 and merged.stdout == adapted.stdout
    base = AutoModelForImageTextToText.from_pretrained(tiny_idefics3)
    assert isinstance(PeftModel.from_pretrained(base, tmp_path / "run"), PeftModel)  # plain PEFT loads it too


def test_eval_command_reports_json(tiny_idefics3, dataset):
    result = _cli("eval", "--data", dataset, "--model", tiny_idefics3, "--offline", "--max-new-tokens", "4")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"cer", "wer", "exact_match", "anls"} <= set(report["overall"]) and len(report["examples"]) == 9


@pytest.mark.skipif(shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
                    reason="needs torchrun")
def test_ddp_two_cpu_processes(tiny_idefics3, dataset, tmp_path):
    """The same command under torchrun: two gloo processes, one adapter, one run.json."""
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "vlmcli", "finetune", "--stage", "3",
               "--data", str(dataset), "-o", str(tmp_path / "ddp"), "--model", str(tiny_idefics3), "--offline",
               "--max-steps", "2", "--batch-size", "1", "--grad-accum", "1", "--save-steps", "2"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["global_step"] == 2  # the main process reports
    assert json.loads((tmp_path / "ddp" / "run.json").read_text())["status"] == "finished"
    assert (tmp_path / "ddp" / "adapter_model.safetensors").is_file()


def test_adapter_brings_its_training_resolution(tiny_idefics3, dataset, tmp_path):
    run(_request(tiny_idefics3, dataset, tmp_path / "run", max_steps=1, longest_edge_px=96, split=False))
    spec = ModelSpec(model_id=str(tiny_idefics3), offline=True, adapter=tmp_path / "run")
    trained = load_run(RunSpec(model=spec))
    assert trained.max_input_px == 96 and trained.processor.image_processor.do_image_splitting is False
    chosen = load_run(RunSpec(model=spec, split=SplitSpec(split=True, longest_edge_px=128)))
    assert chosen.max_input_px == 128 and chosen.processor.image_processor.do_image_splitting is True


def test_max_minutes_stops_early_and_saves_like_the_end(tiny_idefics3, dataset, tmp_path):
    """A time budget (GPU or CPU runs sized by the clock): training stops after the step that crosses it."""
    summary = run(_request(tiny_idefics3, dataset, tmp_path / "run", max_steps=50, max_minutes=1e-6,
                           dataloader_workers=1))
    assert summary.global_step == 1
    assert (tmp_path / "run" / "adapter_config.json").exists()
