"""GPU checks (skipped without CUDA): bf16 and 4-bit loading on the device, same answers as plain transformers."""

from __future__ import annotations

import pytest
import torch
from conftest import load_run

from vlmcli.pipeline.ask import ask
from vlmcli.specs import Device, DType, GenerationSpec, ModelSpec, Quant, RunSpec

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _run(checkpoint, **model_kwargs):
    return RunSpec(model=ModelSpec(model_id=str(checkpoint), offline=True, device=Device.cuda, **model_kwargs),
                           generation=GenerationSpec(max_new_tokens=8))


def test_auto_dtype_on_cuda_is_bf16(tiny_idefics3):
    loaded = load_run(_run(tiny_idefics3))
    assert loaded.dtype is torch.bfloat16 and next(loaded.model.parameters()).device.type == "cuda"


@pytest.mark.parametrize("quantize", [Quant.nf4, Quant.int8])
def test_quantized_on_cuda(tiny_idefics3, page_png, quantize):
    answer = ask([page_png], "What is written here?", _run(tiny_idefics3, quantize=quantize))
    assert answer.new_tokens > 0 and answer.image_tokens > 0


def test_cpu_and_gpu_agree_in_float32(tiny_idefics3, page_png):
    cpu = RunSpec(model=ModelSpec(model_id=str(tiny_idefics3), offline=True, dtype=DType.float32),
                          generation=GenerationSpec(max_new_tokens=8))
    on_cpu = ask([page_png], "What is written here?", cpu)
    on_gpu = ask([page_png], "What is written here?", _run(tiny_idefics3, dtype=DType.float32))
    assert on_cpu.token_ids == on_gpu.token_ids
