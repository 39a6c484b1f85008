"""`vlmcli finetune` as a typed request, without a model: the options defined once, --show-config in JSON and
TOML, the TOML read back by --config, and the typed summary that run.json holds."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner
from vlmcli.finetune import mixture, stages
from vlmcli.finetune.mixture import Source
from vlmcli.finetune.options import FinetuneOptions
from vlmcli.finetune.request import build_request
from vlmcli.finetune.summary import EvalSetReport, SourceReport, TrainingSummary

from vlmcli.cli import app
from vlmcli.errors import ExitCode

runner = CliRunner()
SHOW = ["finetune", "--show-config", "--model", "some/model", "--offline"]


def _show(*args) -> str:
    result = runner.invoke(app, [*SHOW, *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_every_stage_setting_option_names_a_stage_field_and_takes_its_range():
    settings = {item.name: item.metadata["setting"] for item in dataclasses.fields(FinetuneOptions)
                if item.metadata.get("setting")}
    assert set(settings.values()) <= stages.FIELD_NAMES
    for name, setting in settings.items():
        option = next(item for item in dataclasses.fields(FinetuneOptions) if item.name == name).metadata["option"]
        if setting in stages.RANGES and name != "longest_edge":  # --longest-edge is RunOptions' own, same range
            assert option.accepts == stages.RANGES[setting], name
    assert FinetuneOptions(stage=2, dora=False, full=True, longest_edge=512).stage_overrides() == {
        **{setting: None for setting in settings.values()}, "use_dora": False, "full_finetune": True,
        "longest_edge_px": 512}


def test_the_request_resolves_preset_then_file_then_flags_and_the_data(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("lora_rank = 12\n[stage3]\nepochs = 3\n[[data]]\npath = \"lines.jsonl\"\nweight = 0.3\n")
    request = build_request(FinetuneOptions(stage=3, config=config, epochs=2.0, model="some/model"))
    assert (request.stage.lora_rank, request.stage.epochs, request.stage.lora_alpha) == (12, 2.0, 8)
    assert request.data == (Source(tmp_path / "lines.jsonl", 0.3),) and request.output is None
    assert request.model.model_id == "some/model" and request.eval_max_new_tokens == 256
    assert request.pdf.max_dpi == 200  # PDF pages at most at 200 dpi, as at inference without --longest-edge
    assert build_request(FinetuneOptions(stage=3, longest_edge=4096)).pdf.max_dpi is None


def test_show_config_toml_reads_back_as_the_same_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "mine.toml"
    config.write_text("lora_rank = 12\n[stage2]\nlearning_rate = 5e-5\nlora_targets = '.*\\.(q|v)_proj$'\n"
                      "full_train = ['connector', 'lm_head']\n")
    first = _show("--stage", "2", "--config", config, "--epochs", "2", "--no-dora", "--longest-edge", "768",
                  "--data", "pages.jsonl", "--data", "lines.jsonl:weight=0.2,split=false",
                  "--eval-data", "held.jsonl:name=held", "--show-format", "toml")
    shown = tomllib.loads(first)
    assert shown["stage"]["lora_rank"] == 12 and shown["stage"]["use_dora"] is False
    assert shown["stage"]["lora_targets"] == ".*\\.(q|v)_proj$" and shown["stage"]["longest_edge_px"] == 768
    assert [source["path"] for source in shown["data"]] == [str(tmp_path / "pages.jsonl"),
                                                           str(tmp_path / "lines.jsonl")]
    (tmp_path / "shown.toml").write_text(first)
    again = _show("--stage", "2", "--config", "shown.toml", "--show-format", "toml")
    assert again == first
    as_json = json.loads(_show("--stage", "2", "--config", "shown.toml"))
    assert {key: as_json[key] for key in ("stage", "data", "eval_data")} == {
        key: json.loads(_show("--stage", "2", "--config", config, "--epochs", "2", "--no-dora", "--longest-edge",
                              "768", "--data", "pages.jsonl", "--data", "lines.jsonl:weight=0.2,split=false",
                              "--eval-data", "held.jsonl:name=held"))[key] for key in ("stage", "data", "eval_data")}


def test_a_shown_config_with_replay_reads_back_without_doubling_it(tmp_path, monkeypatch, finished_stage_two):
    monkeypatch.chdir(tmp_path)
    earlier = finished_stage_two
    first = _show("--stage", "3", "--from", earlier, "--data", "qa.jsonl", "--show-format", "toml")
    assert [bool(source.get("replay_of")) for source in tomllib.loads(first)["data"]] == [False, True]
    (tmp_path / "shown.toml").write_text(first)
    assert _show("--stage", "3", "--from", earlier, "--config", "shown.toml", "--show-format", "toml") == first
    alone = tomllib.loads(_show("--stage", "3", "--config", "shown.toml", "--show-format", "toml"))
    assert [source["path"] for source in alone["data"]] == [str(tmp_path / "qa.jsonl")]  # no --from, no replay


def test_a_shown_stage_is_for_its_own_stage_only(tmp_path):
    (tmp_path / "shown.toml").write_text(_show("--stage", "2", "--show-format", "toml"))
    result = runner.invoke(app, [*SHOW, "--stage", "3", "--config", str(tmp_path / "shown.toml")])
    assert result.exit_code == ExitCode.usage
    assert "[stage] holds stage 2's settings, not stage 3's" in result.stderr


def test_show_config_never_shows_the_password():
    assert "secret" not in _show("--stage", "1", "--password", "secret", "--show-format", "toml")
    assert "secret" not in _show("--stage", "1", "--password", "secret")


def test_the_summary_in_run_json_is_what_a_later_stage_replays(tmp_path):
    source = Source(tmp_path / "pages.jsonl", 0.25, split=False)
    summary = TrainingSummary(
        examples=8, eval_examples=2, draws_per_epoch=8, loss_average="token",
        data=(SourceReport.of(source, 1.0, 8, {"split": False, "longest_edge_px": 512}),),
        eval_data=(EvalSetReport.of(Source(tmp_path / "held.jsonl"), "held", 2, {"split": True,
                                                                                 "longest_edge_px": 1024}),))
    running = summary.as_dict()
    assert "global_step" not in running and "eval_before" not in running  # not known yet: left out
    finished = json.loads(dataclasses.replace(summary, global_step=3, train_loss=0.5).to_json())
    assert (finished["global_step"], finished["data"][0]["share"], finished["eval_data"][0]["name"]) == (3, 1.0,
                                                                                                        "held")
    replayed = mixture.earlier_mixture(tmp_path / "s1", finished)
    assert replayed == [Source(tmp_path / "pages.jsonl", 1.0, split=False, longest_edge_px=512,
                               replay_of=tmp_path / "s1")]


@pytest.mark.parametrize("text", ["[stage]\nnumber = 1\nlora_rank = 'x'\n", "[stage]\nnumber = 1\nbogus = 2\n"])
def test_a_shown_stage_is_checked_like_any_setting(tmp_path, text):
    (tmp_path / "c.toml").write_text(text)
    result = runner.invoke(app, [*SHOW, "--stage", "1", "--config", str(tmp_path / "c.toml")])
    assert result.exit_code == ExitCode.usage and result.stderr.count("error") == 1


def test_show_config_paths_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shown = json.loads(_show("--stage", "1", "--data", "d.jsonl"))
    assert Path(shown["data"][0]["path"]).is_absolute()
