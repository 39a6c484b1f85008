"""Decode products split into row blocks on a CPU in float32 (vlmcli/model/levers/split_decode.py)."""

from __future__ import annotations

import pytest
import torch

from vlmcli import model as model_module
from vlmcli.inputs.documents import page_refs
from vlmcli.model.generate import generate_from_inputs
from vlmcli.model.levers import registry, split_decode
from vlmcli.model.levers.half_decode import HalfWeightHead
from vlmcli.model.levers.registry import Target
from vlmcli.model.levers.split_decode import SPLIT_ROWS, SplitDecodeLinear, row_blocks
from vlmcli.pipeline.page import prepare_page
from vlmcli.specs import DecodeDType, DType, GenerationSpec, ModelSpec, RunSpec, SplitSpec


def _layer(out_features: int = 80, bias: bool = True) -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(48, out_features, bias=bias)


def _split(linear: torch.nn.Linear) -> SplitDecodeLinear:
    holder = torch.nn.Module()
    holder.model = torch.nn.Module()  # split_language_model looks for model.text_model
    holder.model.text_model = torch.nn.Module()
    holder.model.text_model.layer = linear
    split_decode.split_language_model(holder)
    return holder.model.text_model.layer


@pytest.mark.parametrize(("out_features", "threads", "blocks"), [
    (576, 2, 4), (49280, 2, 4), (1536, 4, 8), (80, 1, 2), (9, 2, 3), (7, 2, 1),
])
def test_row_blocks_divide_the_weight_two_per_thread_where_they_can(out_features, threads, blocks):
    assert row_blocks(out_features, threads) == blocks


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 1, 48), (3, 1, 48), (SPLIT_ROWS, 48)])
def test_a_decode_step_equals_nn_linear_to_float32_rounding(bias, shape):
    linear = _layer(bias=bias)
    split = _split(linear)
    x = torch.randn(shape)
    with torch.inference_mode():
        got, expected = split(x), torch.nn.functional.linear(x, linear.weight, linear.bias)
        exact = torch.nn.functional.linear(x.double(), linear.weight.double(),
                                           None if linear.bias is None else linear.bias.double())
    assert got.shape == expected.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.double(), exact, rtol=1e-5, atol=1e-5)


def test_many_rows_and_unsplittable_weights_are_nn_linear_exactly():
    linear, odd = _layer(), _layer(out_features=7)
    prefill, step = torch.randn(2, SPLIT_ROWS, 48), torch.randn(1, 1, 48)
    with torch.inference_mode():
        assert torch.equal(_split(linear)(prefill), linear(prefill))
        assert torch.equal(_split(odd)(step), odd(step))


def test_the_layer_keeps_its_parameters_and_saves_as_before():
    linear = _layer()
    split = _split(linear)
    assert type(split) is SplitDecodeLinear
    assert split.weight is linear.weight and split.bias is linear.bias  # a tied head stays tied
    assert split.state_dict().keys() == {"weight", "bias"}


def test_the_language_model_and_head_are_split_and_the_vision_tower_is_not(tiny_idefics3):
    loaded = model_module.load(ModelSpec(model_id=str(tiny_idefics3), dtype=DType.float32, offline=True),
                               SplitSpec())
    inner = loaded.model.model
    split = [m for m in loaded.model.modules() if isinstance(m, SplitDecodeLinear)]
    assert len(split) == 7 * inner.text_model.config.num_hidden_layers + 1  # 7 per layer, and lm_head
    assert type(loaded.model.lm_head) is SplitDecodeLinear
    assert not any(isinstance(m, SplitDecodeLinear) for m in inner.vision_model.modules())
    assert split_decode.unsplit_language_model(loaded.model) == len(split)
    assert not any(isinstance(m, SplitDecodeLinear) for m in loaded.model.modules())


@pytest.mark.parametrize(("options", "kind"), [
    ({"dtype": DType.bfloat16}, torch.nn.Linear),
    ({"dtype": DType.float32, "decode_dtype": DecodeDType.float16}, HalfWeightHead),
])
def test_other_settings_keep_their_own_layers(tiny_idefics3, options, kind):
    loaded = model_module.load(ModelSpec(model_id=str(tiny_idefics3), offline=True, **options), SplitSpec())
    assert type(loaded.model.lm_head) is kind


def test_a_page_reads_the_same_tokens_as_nn_linear(tiny_idefics3, page_png):
    run = RunSpec(model=ModelSpec(model_id=str(tiny_idefics3), dtype=DType.float32, offline=True),
                  split=SplitSpec(split=True), generation=GenerationSpec(max_new_tokens=12, min_new_tokens=12))
    loaded = model_module.load(run.model, run.split)
    inputs = prepare_page(loaded, page_refs(page_png, None, run.pdf)[0], "What is written?", run).inputs[0]
    split = generate_from_inputs(loaded, inputs, run.generation)
    split_decode.unsplit_language_model(loaded.model)
    plain = generate_from_inputs(loaded, inputs, run.generation)
    assert len(split.token_ids) == 12 and split.token_ids == plain.token_ids


def test_it_applies_on_a_cpu_in_float32_only():
    def chosen(device, dtype, half_decode=False):
        return "split_decode" in [lever.name for lever in registry.select(Target(device, dtype, "idefics3",
                                                                                   half_decode=half_decode))]

    assert chosen("cpu", "float32")
    assert not chosen("cpu", "bfloat16") and not chosen("cuda", "float32")
    assert not chosen("cpu", "float32", half_decode=True)  # --decode-dtype float16 replaces the same layers
