"""The lever registry (vlmcli/model/levers/registry.py): one ordered list, where each lever applies, the
VLMCLI_SKIP_LEVERS switch, and the resolution a run's fingerprint names (vlmcli/model/runtime.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vlmcli import model as model_module
from vlmcli.errors import UsageError
from vlmcli.model import runtime
from vlmcli.model.levers import registry
from vlmcli.model.levers.packed_linear import PackedLinear
from vlmcli.model.levers.registry import SKIP_ENV, Target
from vlmcli.specs import DType, ModelSpec, SplitSpec

AVX2 = frozenset({"avx", "avx2", "fma"})
ROOT = Path(__file__).resolve().parents[1]


def _names(target: Target, skip: frozenset[str] = frozenset()) -> list[str]:
    return [lever.name for lever in registry.select(target, skip)]


def test_the_registry_is_one_ordered_list_with_a_home_for_every_lever():
    names = [lever.name for lever in registry.LEVERS]
    assert len(names) == len(set(names)) == len(registry.BY_NAME)
    # Packing frees weights, so it comes before the heap is given back; half_decode wins over split_decode.
    assert names.index("packed_linear") < names.index("heap")
    assert names.index("half_decode") < names.index("split_decode")
    assert {lever.changes for lever in registry.LEVERS} <= {"pixels", "vision", "text", "memory"}


def test_the_docs_table_lists_the_registry_in_its_order():
    table = (ROOT / "docs" / "levers-and-fingerprints.md").read_text().split("## What the fingerprint holds")[0]
    rows = [line.split("|")[1].strip().strip("`") for line in table.splitlines() if line.startswith("| `")]
    assert rows == [lever.name for lever in registry.LEVERS]


def test_where_each_lever_applies():
    cpu32 = Target("cpu", "float32", "idefics3", cpu_flags=AVX2)
    assert _names(cpu32) == ["lean_processor", "packed_linear", "split_decode", "heap", "patch_layout",
                             "sigmoid_gelu", "image_features"]
    assert _names(Target("cpu", "bfloat16", "idefics3", cpu_flags=AVX2)) == [
        "lean_processor", "heap", "attention", "patch_layout", "image_features"]
    assert _names(Target("cuda", "bfloat16", "smolvlm")) == ["image_features"]  # a family without lean_processor
    assert _names(Target("cpu", "float32", "idefics2", half_decode=True)) == [
        "half_decode", "heap", "patch_layout", "image_features"]
    assert _names(Target("cpu", "float32", "idefics3", cpu_flags=AVX2, for_training=True)) == [
        "lean_processor", "heap"]  # training loads keep transformers' model as it is


def test_the_switch_names_levers_or_all_and_refuses_anything_else():
    assert registry.skipped({}) == registry.skipped({SKIP_ENV: " "}) == frozenset()
    assert registry.skipped({SKIP_ENV: "heap, patch_layout"}) == {"heap", "patch_layout"}
    everything = registry.skipped({SKIP_ENV: "all"})
    assert "half_decode" not in everything and everything == {lever.name for lever in registry.LEVERS} - {
        "half_decode"}
    assert _names(Target("cpu", "float32", "idefics3", cpu_flags=AVX2), everything) == []
    with pytest.raises(UsageError, match="no lever named packed_linaer") as caught:
        registry.skipped({SKIP_ENV: "packed_linaer"})
    assert "`all`" in caught.value.hint
    with pytest.raises(UsageError, match="no lever named none"):  # `none` would read both ways: refused
        registry.skipped({SKIP_ENV: "none"})
    with pytest.raises(UsageError, match="half_decode is not on by default"):
        registry.skipped({SKIP_ENV: "half_decode"})


def test_a_load_uses_the_levers_resolved_for_it_and_skips_those_switched_off(tiny_idefics3, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_flags", lambda: AVX2)
    spec = ModelSpec(model_id=str(tiny_idefics3), dtype=DType.float32, offline=True)
    resolved = model_module.resolve(spec)
    assert (resolved.device, resolved.dtype, resolved.target.model_type) == ("cpu", "float32", "idefics3")
    loaded = model_module.load(spec, SplitSpec())
    assert loaded.resolved.lever_names == resolved.lever_names and loaded.uses("packed_linear")
    assert any(isinstance(module, PackedLinear) for module in loaded.model.modules())
    monkeypatch.setenv(SKIP_ENV, "all")
    plain = model_module.load(spec, SplitSpec())
    assert plain.resolved.lever_names == () and not plain.uses("image_features")
    assert not any(isinstance(module, PackedLinear) for module in plain.model.modules())
    assert type(plain.processor.image_processor).__name__ == "Idefics3ImageProcessorPil"  # not the lean one
    assert plain.dtype is torch.float32


def test_resolving_on_a_cpu_only_torch_imports_no_torch(tiny_idefics3):
    """Planning a run and skipping its done pages must not pay torch's import where torch can see no GPU."""
    code = ("import sys; from vlmcli import model; from vlmcli.specs import ModelSpec\n"
            f"print(model.resolve(ModelSpec(model_id={str(tiny_idefics3)!r}, offline=True)).line())\n"
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line, imported = result.stdout.splitlines()
    assert line.startswith("cpu, ") and "image_features" in line
    assert imported == str(runtime._build_has_gpu_backend())  # a CUDA or ROCm build asks torch, by design
