"""Weights read one tensor at a time (vlmcli/model/weights.py) give the model transformers' own loading gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForImageTextToText

from vlmcli import model as model_module
from vlmcli.model import loading, weights
from vlmcli.model.levers import heap
from vlmcli.specs import DType, ModelSpec, Quant, SplitSpec

# The loaded modules are compared with transformers' as loaded: nn.Linear, not the packed inference layers.
pytestmark = pytest.mark.usefixtures("unpacked_linear")


def _resaved(checkpoint: Path, out_dir: Path, *, dtype: torch.dtype, max_shard_size: str | None = None) -> Path:
    """The checkpoint saved again in `dtype` (and in shards), with its processor files."""
    model = AutoModelForImageTextToText.from_pretrained(checkpoint, dtype=dtype)
    model.save_pretrained(out_dir, **({"max_shard_size": max_shard_size} if max_shard_size else {}))
    for extra in checkpoint.iterdir():
        if not (out_dir / extra.name).exists() and not extra.name.startswith("model"):
            shutil.copy(extra, out_dir / extra.name)
    return out_dir


def _assert_same_model(ours, theirs) -> None:
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert mine.keys() == reference.keys()
    for name, tensor in reference.items():
        assert mine[name].dtype == tensor.dtype, name
        assert torch.equal(mine[name], tensor), name
    assert ours.generation_config.to_dict() == theirs.generation_config.to_dict()
    assert ours.name_or_path == ours.config.name_or_path == theirs.name_or_path


@pytest.mark.parametrize("family", ["idefics3", "idefics2"])
@pytest.mark.parametrize("shards", [None, "40KB"])
def test_bf16_weights_read_by_tensor_into_float32_equal_transformers_load(request, tmp_path, monkeypatch, family,
                                                                          shards):
    checkpoint = _resaved(request.getfixturevalue(f"tiny_{family}"), tmp_path / "ckpt", dtype=torch.bfloat16,
                          max_shard_size=shards)
    spec = ModelSpec(model_id=str(checkpoint), dtype=DType.float32, offline=True)
    files = weights.safetensors_files(spec)
    assert files is not None and (len(files) > 1) == (shards is not None)
    read = []
    monkeypatch.setattr(weights, "lazy_state_dict", lambda *args, real=weights.lazy_state_dict: read.append(1) or
                        real(*args))
    loaded = model_module.load(spec, SplitSpec())
    assert read, "the model was not read tensor by tensor"
    reference = AutoModelForImageTextToText.from_pretrained(checkpoint, dtype=torch.float32)
    _assert_same_model(loaded.model, reference)


def test_quantized_4bit_load_by_tensor_equals_transformers_load(tiny_idefics3):
    pytest.importorskip("bitsandbytes")
    spec = ModelSpec(model_id=str(tiny_idefics3), dtype=DType.float32, quantize=Quant.nf4, offline=True)
    loaded = model_module.load(spec, SplitSpec())
    reference = AutoModelForImageTextToText.from_pretrained(
        tiny_idefics3, dtype=torch.float32, quantization_config=loading.quantization_config(Quant.nf4, torch.float32))
    _assert_same_model(loaded.model, reference)


def test_files_in_the_hub_cache_are_found_and_missing_ones_left_to_transformers(tiny_idefics3, tmp_path, monkeypatch):
    from huggingface_hub import constants

    snapshot = tmp_path / "hub" / "models--org--tiny" / "snapshots" / ("a" * 40)
    shutil.copytree(tiny_idefics3, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert weights.safetensors_files(ModelSpec(model_id="org/tiny", offline=True)) == [snapshot / "model.safetensors"]
    assert weights.safetensors_files(ModelSpec(model_id="org/other", offline=True)) is None
    (snapshot / "model.safetensors").unlink()
    assert weights.safetensors_files(ModelSpec(model_id="org/tiny", offline=True)) is None


def test_quantizing_load_on_cpu_maps_big_allocations_then_restores_glibc_ceiling(monkeypatch):
    calls = []

    class FakeLibc:
        def mallopt(self, parameter, value):
            calls.append(("mallopt", parameter, value))

        def malloc_trim(self, pad):
            calls.append(("trim", pad))

    monkeypatch.setattr(heap, "_libc", FakeLibc)
    with heap.heap_returned_while_quantizing("cuda", quantizing=True):
        pass
    with heap.heap_returned_while_quantizing("cpu", quantizing=False):
        pass
    assert calls == []
    with pytest.raises(RuntimeError):
        with heap.heap_returned_while_quantizing("cpu", quantizing=True):
            raise RuntimeError("load failed")
    assert calls == [("mallopt", heap.M_MMAP_THRESHOLD, 64 * 1024),
                     ("mallopt", heap.M_MMAP_THRESHOLD, heap.GLIBC_MMAP_THRESHOLD_MAX), ("trim", 0)]


def test_mapped_tensors_equal_safetensors_own_reads_and_upcast_only_narrower_floats(tmp_path):
    from contextlib import ExitStack

    from safetensors.torch import load_file, save_file

    stored = {"bf16": torch.randn(3, 5).to(torch.bfloat16), "f16": torch.randn(7).half(), "f32": torch.randn(2, 2),
              "i64": torch.arange(6).reshape(2, 3), "flag": torch.tensor([True, False]), "scalar": torch.tensor(2.5),
              "empty": torch.zeros(0, 4), "u8": torch.arange(255, dtype=torch.uint8)}
    path = tmp_path / "model.safetensors"
    save_file(stored, str(path))
    with ExitStack() as stack:
        state = weights.lazy_state_dict([path], stack, torch.float32)
        assert all(isinstance(value, weights.MappedTensor) for value in state.values())
        read = {name: value[...] for name, value in state.items()}
    reference = load_file(str(path))
    for name, tensor in reference.items():
        wider = name in ("bf16", "f16")
        assert read[name].dtype == (torch.float32 if wider else tensor.dtype), name
        assert torch.equal(read[name], tensor.float() if wider else tensor), name


def test_mapped_reads_drop_only_the_whole_pages_a_tensor_covers():
    import mmap

    advised = []

    class Mapping:
        def madvise(self, option, start, length):
            advised.append((option, start, length))

    page = mmap.PAGESIZE
    weights._drop_pages(Mapping(), 10, 3 * page + 5)
    weights._drop_pages(Mapping(), page + 1, 2 * page - 1)
    assert advised == [(mmap.MADV_DONTNEED, page, 2 * page)]


def test_a_header_longer_than_its_file_is_corrupt_weights(tmp_path):
    from contextlib import ExitStack

    from vlmcli.errors import ModelError

    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\xff" * 8 + b"{}")
    with ExitStack() as stack, pytest.raises(ModelError, match="corrupt weights"):
        weights.lazy_state_dict([path], stack, torch.float32)


def test_a_file_with_a_dtype_the_mapped_reader_does_not_know_is_read_with_pread(tmp_path):
    from contextlib import ExitStack

    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    stored = {"scale": torch.randn(4), "weight": torch.randn(4, 4).to(torch.float8_e4m3fn)}
    save_file(stored, str(path))
    with ExitStack() as stack:
        state = weights.lazy_state_dict([path], stack, torch.float32)
        assert not any(isinstance(value, weights.MappedTensor) for value in state.values())
        assert torch.equal(state["weight"][...].float(), stored["weight"].float())
