"""Data mixtures without a model: the sampler's proportions and seeds, weights and shares, the source syntax,
replay of an earlier run's mixture, and the checks before the model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner
from vlmcli.finetune import mixture
from vlmcli.finetune.mixture import Source
from vlmcli.finetune.sampler import MixtureSampler
from vlmcli.finetune.sources import load_sources, replay_cut

from vlmcli.cli import app
from vlmcli.errors import InputError, UsageError


def test_sampler_proportions_over_10k_draws():
    sizes, shares = [300, 4000, 7], [0.6, 0.3, 0.1]
    order = MixtureSampler(sizes, shares, draws=10_000, seed=0).order()
    source_of = torch.bucketize(order, torch.tensor([300, 4300]), right=True)
    counts = torch.bincount(source_of, minlength=3).tolist()
    for count, share in zip(counts, shares):  # three binomial standard deviations, at most 0.015
        assert abs(count / 10_000 - share) < 0.015, counts
    for source, (start, size) in enumerate(zip((0, 300, 4300), sizes)):
        uses = torch.bincount(order[source_of == source] - start, minlength=size)
        assert int(uses.max() - uses.min()) <= 1, "a source is used through before any example repeats"


def test_sampler_seeds_reproduce_and_one_source_is_a_shuffle():
    def order(seed, epoch, sizes=(50, 20), shares=(0.5, 0.5)):
        sampler = MixtureSampler(list(sizes), list(shares), draws=100, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(3, 0) == order(3, 0) and order(3, 1) == order(3, 1)
    assert order(3, 0) != order(3, 1) and order(3, 0) != order(4, 0)
    alone = order(0, 0, sizes=(100,), shares=(1.0,))
    assert sorted(alone) == list(range(100)) and alone != list(range(100))


def test_weights_sizes_and_replay_make_the_shares():
    pages, lines = Source(Path("pages.jsonl")), Source(Path("lines.jsonl"), 0.3)
    assert mixture.shares((pages, lines), [300, 12_000]) == pytest.approx([0.7, 0.3])
    assert mixture.shares((pages, Source(Path("b"))), [300, 100]) == pytest.approx([0.75, 0.25])  # by size
    assert mixture.shares((Source(Path("a"), 2.0), Source(Path("b"), 1.0)), [5, 5]) == pytest.approx([2 / 3, 1 / 3])
    earlier = {"data": [{"path": "/d/lines.jsonl", "share": 0.8, "split": True, "longest_edge_px": 256},
                        {"path": "/d/glyphs.jsonl", "share": 0.2, "split": False, "longest_edge_px": 64}]}
    sources = mixture.training_sources([pages, lines], 0.25, (Path("runs/s1"), earlier))
    assert mixture.shares(sources, [300, 12_000, 5, 5]) == pytest.approx([0.525, 0.225, 0.2, 0.05])
    assert sources[3].resolution == (False, 64) and sources[3].replay_of == Path("runs/s1")
    # What the earlier run replayed in turn keeps an equal part: each earlier run's data gets half of 0.25 here.
    earlier["data"][1]["replay_of"] = "runs/glyphs"
    sources = mixture.training_sources([pages, lines], 0.25, (Path("runs/s1"), earlier))
    assert mixture.shares(sources, [300, 12_000, 5, 5]) == pytest.approx([0.525, 0.225, 0.125, 0.125])
    assert [s.replay_of for s in sources[2:]] == [Path("runs/s1"), Path("runs/glyphs")]
    assert mixture.draws_per_epoch(sources, [300, 12_000, 5, 5]) == 16_400  # own data once, replay on top
    assert mixture.training_sources([pages], 0.0, (Path("runs/s1"), earlier)) == (pages,)
    with pytest.raises(UsageError, match="add up to 1.2, which leaves nothing"):
        mixture.training_sources([pages, Source(Path("b"), 1.2)], 0.25, None)
    with pytest.raises(UsageError, match="below 1"):
        mixture.training_sources([pages], 1.0, None)


def test_a_run_json_from_before_mixtures_is_replayed_at_its_stage_resolution():
    old = {"data": "data/lines.jsonl", "stage": {"split": False, "longest_edge_px": 128}}
    (replayed,) = mixture.training_sources([Source(Path("p"))], 0.25, (Path("runs/s1"), old))[1:]
    assert (replayed.path, replayed.weight, replayed.resolution) == (Path("data/lines.jsonl"), 0.25, (False, 128))
    assert replayed.replay_of == Path("runs/s1")


def test_source_syntax(tmp_path):
    assert mixture.parse_source("a.jsonl") == Source(Path("a.jsonl"))
    assert mixture.parse_source("a.jsonl:0.3") == Source(Path("a.jsonl"), 0.3)
    assert mixture.parse_source("g.jsonl:weight=0.2,split=false,longest_edge_px=64") == \
        Source(Path("g.jsonl"), 0.2, split=False, longest_edge_px=64)
    assert mixture.parse_source("h.jsonl:name=glyphs,split=true", "--eval-data") == \
        Source(Path("h.jsonl"), split=True, name="glyphs")
    odd = tmp_path / "a:b.jsonl"
    odd.write_text("")
    assert mixture.parse_source(str(odd)) == Source(odd)  # an existing file wins over the syntax
    for text, option, message in [("a.jsonl:weight=x", "--data", "is not a float"),
                                  ("a.jsonl:colour=red", "--data", "unknown key"),
                                  ("a.jsonl:split=maybe", "--data", "not true or false"),
                                  ("a.jsonl:0", "--data", r"out of range \(needs 0 < x\)"),
                                  ("a.jsonl:0.5", "--eval-data", "take no weight")]:
        with pytest.raises(UsageError, match=message):
            mixture.parse_source(text, option)


def test_config_tables_resolve_paths_beside_the_config(tmp_path):
    config = tmp_path / "conf" / "stages.toml"
    config.parent.mkdir()
    config.write_text('lora_rank = 4\n[[data]]\npath = "lines.jsonl"\nweight = 0.3\n'
                      '[[stage2.data]]\npath = "/abs/pages.jsonl"\nsplit = true\nlongest_edge_px = 512\n'
                      '[[eval_data]]\npath = "held.jsonl"\nname = "held"\n')
    from vlmcli.finetune import stages

    settings, data, evals = mixture.sources_in_config(stages.load_config(config, 2), config)
    assert settings == {"lora_rank": 4}
    assert data == [Source(Path("/abs/pages.jsonl"), split=True, longest_edge_px=512)]  # [stage2] replaces
    assert evals == [Source(config.parent / "held.jsonl", name="held")]
    _, data, _ = mixture.sources_in_config(stages.load_config(config, 3), config)
    assert data == [Source(config.parent / "lines.jsonl", 0.3)]


def _jsonl(path: Path, rows: list) -> Path:
    (path.parent / "a.png").write_bytes(b"x")
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_every_source_is_checked_with_file_and_line_before_the_model_loads(tmp_path):
    good = _jsonl(tmp_path / "good.jsonl", [{"image": "a.png", "text": "ok"}] * 3)
    bad = _jsonl(tmp_path / "bad.jsonl", [{"image": "a.png", "text": "ok"}, "{oops"])
    worse = _jsonl(tmp_path / "worse.jsonl", [{"image": "gone.png", "text": "x"}])
    with pytest.raises(InputError) as caught:
        load_sources((Source(good), Source(bad, 0.3), Source(worse)), skip_bad=False)
    message = caught.value.message
    assert f"{bad}: 1 bad example(s): line 2: not valid JSON" in message
    assert f"{worse}: 1 bad example(s): line 1: " in message and "gone.png: no such file" in message
    sourced = load_sources((Source(good), Source(bad, split=False, longest_edge_px=64)), skip_bad=True)
    assert [len(s.examples) for s in sourced] == [3, 1] and sourced[1].examples[0].resolution == (False, 64)
    with pytest.raises(InputError, match=r"moved.jsonl: no such data file \(the training data of runs/s1") as caught:
        load_sources((Source(good), Source(tmp_path / "moved.jsonl", 0.25, replay_of=Path("runs/s1"))), False)
    assert caught.value.hint == "--replay 0 trains without it"


def test_replayed_sources_are_cut_to_their_draws(tmp_path):
    good = _jsonl(tmp_path / "good.jsonl", [{"image": "a.png", "text": f"line {i}"} for i in range(40)])
    sourced = load_sources((Source(good), Source(good, 0.25, replay_of=Path("runs/s1"))), skip_bad=False)
    cut = replay_cut(sourced, [0.75, 0.25], total_draws=20, seed=0)
    assert len(cut[0].examples) == 40 and len(cut[1].examples) == 5
    assert cut[1].examples == replay_cut(sourced, [0.75, 0.25], 20, seed=0)[1].examples  # the seed decides


def test_show_config_shows_the_mixture_and_replays_the_earlier_run(tmp_path, finished_stage_two):
    earlier = finished_stage_two
    args = ["finetune", "--stage", "3", "--show-config", "--from", str(earlier), "--data", "qa.jsonl",
            "--data", "lines.jsonl:weight=0.2,split=false", "--eval-data", "held.jsonl"]
    shown = json.loads(CliRunner().invoke(app, args).stdout)
    assert shown["stage"]["replay"] == 0.5 and len(shown["data"]) == 3
    assert shown["data"][1]["weight"] == 0.2 and shown["data"][1]["split"] is False
    assert shown["data"][2] == {"path": "/d/pages.jsonl", "weight": 0.5, "split": True, "longest_edge_px": 512,
                                "replay_of": str(earlier.resolve())}
    assert [s["path"] for s in shown["eval_data"]] == [str(Path("held.jsonl").resolve())]
    off = json.loads(CliRunner().invoke(app, [*args, "--replay", "0"]).stdout)
    assert off["stage"]["replay"] == 0.0 and len(off["data"]) == 2
