"""`ocr --batch-size N`: several pages per generate call give the tokens of pages read one by one (float32)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from conftest import always_load, draw_page, load_run

from tools.models.build import force_loop
from vlmcli.errors import InputError
from vlmcli.pipeline import page
from vlmcli.pipeline.transcribe import transcribe
from vlmcli.specs import DType, GenerationSpec, KVCache, ModelSpec, RunSpec, SplitSpec

pytestmark = pytest.mark.model


def _run(checkpoint, batch_size: int, max_new_tokens: int = 12, split: bool | None = None) -> RunSpec:
    return RunSpec(model=ModelSpec(model_id=str(checkpoint), offline=True, dtype=DType.float32),
                   split=SplitSpec(split=split), generation=GenerationSpec(max_new_tokens=max_new_tokens),
                   batch_size=batch_size)


@pytest.fixture
def mixed_pages(tmp_path):
    """Pages of different shapes: different numbers of sub-images, so the rows are padded differently."""
    paths = []
    for index, (size, text) in enumerate([((400, 300), "Total 12.50"), ((90, 60), "ab"), ((300, 700), "tall"),
                                          ((64, 64), "x"), ((500, 120), "wide line")]):
        path = tmp_path / f"p{index}.png"
        draw_page(size, text).save(path)
        paths.append(path)
    return paths


def _fields(items):
    return [(type(i).__name__, str(i.source.name), i.page_number, getattr(i, "text", None),
             getattr(i, "new_tokens", None), getattr(i, "image_tokens", None)) for i in items]


@pytest.mark.parametrize("family", ["idefics3", "idefics2"])
@pytest.mark.parametrize("split", [None, False])
def test_batched_pages_match_pages_read_one_by_one(request, family, split, mixed_pages, monkeypatch):
    checkpoint = request.getfixturevalue(f"tiny_{family}")
    loaded = load_run(_run(checkpoint, 1))
    always_load(monkeypatch, loaded)
    one_by_one = list(transcribe(mixed_pages, "Read.", _run(checkpoint, 1, split=split)))
    batched = list(transcribe(mixed_pages, "Read.", _run(checkpoint, 3, split=split)))
    assert _fields(batched) == _fields(one_by_one)
    assert all(item.new_tokens > 0 for item in batched)


@pytest.mark.parametrize("family", ["idefics3", "idefics2"])
def test_static_and_dynamic_kv_cache_give_the_same_pages(request, family, mixed_pages, monkeypatch):
    """The static cache (the CPU default) is a speed lever only: in float32 every page's tokens are the same."""
    checkpoint = request.getfixturevalue(f"tiny_{family}")
    loaded = load_run(_run(checkpoint, 1))
    always_load(monkeypatch, loaded)
    caches_used, generate = [], loaded.model.generate
    monkeypatch.setattr(loaded.model, "generate",
                        lambda **kw: caches_used.append(kw.get("cache_implementation")) or generate(**kw))
    pages = {}
    for cache in KVCache:
        for batch_size in (1, 3):
            run = _run(checkpoint, batch_size)
            run = replace(run, generation=replace(run.generation, kv_cache=cache))
            before = len(caches_used)
            pages[cache, batch_size] = _fields(transcribe(mixed_pages, "Read.", run))
            assert set(caches_used[before:]) == ({None} if cache is KVCache.dynamic else {"static"})
    assert all(fields == pages[KVCache.dynamic, 1] for fields in pages.values())


def test_a_bad_page_fails_alone_and_the_batch_goes_on(tiny_idefics3, mixed_pages, monkeypatch):
    run = _run(tiny_idefics3, 4)
    loaded = load_run(run)
    always_load(monkeypatch, loaded)
    reference = list(transcribe(mixed_pages, "Read.", replace(run, batch_size=1)))
    original = page.page_images

    def second_breaks(ref, *args):
        if ref.source == mixed_pages[1]:
            raise InputError("p1.png: broken")
        return original(ref, *args)

    monkeypatch.setattr(page, "page_images", second_breaks)
    items = list(transcribe(mixed_pages, "Read.", run))
    assert [type(i).__name__ for i in items] == ["PageResult", "PageFailure", "PageResult", "PageResult",
                                                 "PageResult"]
    assert [i.text for i in items if i is not items[1]] == [r.text for r in reference if r is not reference[1]]


def test_out_of_memory_for_the_batch_reads_its_pages_one_by_one(tiny_idefics3, mixed_pages, monkeypatch):
    run = _run(tiny_idefics3, 5)
    loaded = load_run(run)
    always_load(monkeypatch, loaded)
    reference = list(transcribe(mixed_pages, "Read.", replace(run, batch_size=1)))

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("batch too large")

    real_generate = loaded.model.generate
    monkeypatch.setattr(loaded.model, "generate",
                        lambda **kw: no_memory() if kw["input_ids"].shape[0] > 1 else real_generate(**kw))
    items = list(transcribe(mixed_pages, "Read.", run))
    assert _fields(items) == _fields(reference)


def test_a_looping_row_is_read_again_alone_with_the_retry(tiny_idefics3, mixed_pages, monkeypatch):
    run = _run(tiny_idefics3, 3, max_new_tokens=200)
    loaded = load_run(run)
    always_load(monkeypatch, loaded)
    force_loop(loaded.model, loaded.processor.tokenizer)
    items = list(transcribe(mixed_pages[:3], "Read.", run))
    alone = list(transcribe(mixed_pages[:3], "Read.", replace(run, batch_size=1)))
    assert [i.finish_reason for i in items] == ["repetition"] * 3
    # The batch pass, then the page's own passes (greedy, then the retry with a penalty, per band).
    assert [(i.text, i.attempts) for i in items] == [("a", a.attempts + 1) for a in alone]


@pytest.mark.parametrize("family", ["idefics3", "idefics2"])
def test_rows_merged_by_hand_equal_the_processors_own_batch(request, family):
    """Pages are preprocessed one by one on threads, then padded: exactly as the processor pads a batch."""
    from vlmcli.model.generate import build_inputs, merge_rows
    from vlmcli.prompts import user_messages

    loaded = load_run(_run(request.getfixturevalue(f"tiny_{family}"), 2))
    images = [draw_page((400, 300), "Total 12.50"), draw_page((90, 60), "ab"), draw_page((60, 200), "x")]
    messages = user_messages("Read.", 1)
    merged = merge_rows(loaded, [build_inputs(loaded, messages, [image]) for image in images])
    text = loaded.processor.apply_chat_template(messages, add_generation_prompt=True)
    batch = loaded.processor(text=[text] * len(images), images=[[image] for image in images], padding=True,
                             padding_side="left", return_tensors="pt")
    assert set(merged) == set(batch) - {"token_type_ids"}
    for key, value in merged.items():
        assert torch.equal(value, batch[key].to(value.dtype)), key


@pytest.mark.parametrize(("cache", "device", "expected"), [
    (KVCache.auto, "cpu", {"cache_implementation": "static"}), (KVCache.auto, "cuda", {}),
    (KVCache.auto, "cuda:1", {}), (KVCache.static, "cuda", {"cache_implementation": "static"}),
    (KVCache.dynamic, "cpu", {}),
])
def test_auto_kv_cache_is_static_on_cpu_only(cache, device, expected):
    from vlmcli.model.generate import _cache_options

    assert _cache_options(cache, device) == expected
