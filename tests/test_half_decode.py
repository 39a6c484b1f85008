"""Float16 language-model weights for the decode on a CPU in float32 (vlmcli/model/levers/half_decode.py)."""

from __future__ import annotations

import pytest
import torch

from vlmcli import model as model_module
from vlmcli.errors import UsageError
from vlmcli.model.levers import registry
from vlmcli.model.levers.half_decode import HalfWeightHead, HalfWeightLinear
from vlmcli.model.levers.registry import Target
from vlmcli.pipeline.ask import ask
from vlmcli.specs import DecodeDType, DType, GenerationSpec, ModelSpec, Quant, RunSpec, SplitSpec


def _layer(bias: bool = True, seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(48, 80, bias=bias)


@pytest.mark.parametrize("bias", [True, False])
def test_a_decode_row_is_float32_within_float16_rounding(bias):
    linear = _layer(bias)
    x = torch.randn(1, 1, 48)
    with torch.inference_mode():
        got, expected = HalfWeightLinear(linear)(x), linear(x)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=2e-3, atol=2e-3)
    assert not torch.equal(got, expected)  # the float16 path, not float32's


def test_many_rows_multiply_the_rounded_weight_in_float32():
    """The prefill: float32 arithmetic on the float16-rounded weight, no float16 rounding of the activations."""
    linear = _layer()
    x = torch.randn(2, 33, 48)
    with torch.inference_mode():
        got = HalfWeightLinear(linear)(x)
        expected = torch.nn.functional.linear(x, linear.weight.half().float(), linear.bias)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


def test_a_product_that_overflows_float16_is_computed_in_float32():
    linear = _layer(bias=False)
    with torch.no_grad():
        linear.weight.fill_(1000.0)  # 48 inputs of 2.0 sum to 96,000: beyond float16's 65,504
    x = torch.full((1, 48), 2.0)
    with torch.inference_mode():
        got = HalfWeightLinear(linear)(x)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, linear(x))


def test_a_wide_layer_of_finite_outputs_stays_on_the_float16_path():
    """Logits: 4,000 outputs of about 60 each are finite in float16 though their sum is not."""
    linear = torch.nn.Linear(48, 4000, bias=False)
    with torch.no_grad():
        linear.weight.fill_(0.625)
    x = torch.full((1, 48), 2.0)
    with torch.inference_mode():
        got = HalfWeightLinear(linear)(x)
    assert float(got.sum()) > 65504
    assert torch.equal(got, torch.nn.functional.linear(x.half(), linear.weight.half()).float())


def test_the_head_decides_a_near_tie_as_float32_does():
    """Two logits 0.0016 apart are equal once the hidden state is rounded to float16; the head recomputes them."""
    linear = torch.nn.Linear(2, 20, bias=True)
    with torch.no_grad():
        linear.weight.zero_()
        linear.weight[3, 0] = linear.weight[7, 1] = 16.0
        linear.bias.zero_()
    x = torch.tensor([[[1.0001, 1.0002]]])
    with torch.inference_mode():
        plain, head, full = HalfWeightLinear(linear)(x), HalfWeightHead(linear)(x), linear(x)
    assert plain[0, 0, 3] == plain[0, 0, 7]  # float16 alone: a tie
    assert int(head.argmax(-1)) == int(full.argmax(-1)) == 7
    top = full.topk(8, dim=-1).indices
    torch.testing.assert_close(head.gather(-1, top), full.gather(-1, top), rtol=1e-6, atol=1e-6)


def test_the_head_refines_each_row_of_a_batched_step():
    linear = _layer(seed=1)
    x = torch.randn(3, 1, 48)  # three pages decoded together
    with torch.inference_mode():
        batched = HalfWeightHead(linear)(x)
        one_by_one = torch.cat([HalfWeightHead(linear)(row[None]) for row in x])
    torch.testing.assert_close(batched, one_by_one, rtol=1e-6, atol=1e-6)
    exact = torch.nn.functional.linear(x, linear.weight.half().float(), linear.bias)
    top = batched.topk(8, dim=-1).indices
    torch.testing.assert_close(batched.gather(-1, top), exact.gather(-1, top), rtol=1e-6, atol=1e-6)


def test_it_saves_as_the_float32_layer_it_replaced():
    linear = _layer()
    saved = HalfWeightLinear(linear).state_dict()
    assert saved.keys() == {"weight", "bias"} and saved["weight"].dtype == torch.float32
    torch.testing.assert_close(saved["weight"], linear.weight.detach(), rtol=1e-3, atol=1e-6)


def test_only_the_language_model_and_its_head_are_halved(tiny_idefics3):
    loaded = model_module.load(ModelSpec(model_id=str(tiny_idefics3), dtype=DType.float32, offline=True,
                                         decode_dtype=DecodeDType.float16), SplitSpec())
    inner = loaded.model.model
    text_layers = inner.text_model.config.num_hidden_layers
    halved = [m for m in loaded.model.modules() if isinstance(m, HalfWeightLinear)]
    assert len(halved) == 7 * text_layers + 1  # q, k, v, o, gate, up, down per layer, and lm_head
    assert isinstance(loaded.model.lm_head, HalfWeightHead)
    assert not any(isinstance(m, HalfWeightLinear) for m in inner.vision_model.modules())
    assert not any(type(m) is torch.nn.Linear for m in inner.text_model.modules())


def test_a_page_reads_the_same_tokens_as_float32_on_the_tiny_model(tiny_idefics3, page_png):
    def run(decode_dtype: DecodeDType) -> RunSpec:
        return RunSpec(model=ModelSpec(model_id=str(tiny_idefics3), dtype=DType.float32, offline=True,
                                       decode_dtype=decode_dtype),
                       split=SplitSpec(split=True), generation=GenerationSpec(max_new_tokens=12, min_new_tokens=12))

    half, full = ask([page_png], "What is written?", run(DecodeDType.float16)), ask([page_png], "What is written?",
                                                                                        run(DecodeDType.same))
    assert len(half.token_ids) == 12 and half.token_ids == full.token_ids


@pytest.mark.parametrize(("options", "says"), [
    ({"dtype": DType.bfloat16}, "bfloat16 on cpu"),
    ({"quantize": Quant.nf4}, "4bit weights"),
])
def test_it_is_refused_where_it_would_do_nothing(tiny_idefics3, options, says):
    spec = ModelSpec(model_id=str(tiny_idefics3), offline=True, decode_dtype=DecodeDType.float16, **options)
    with pytest.raises(UsageError, match=says) as caught:
        model_module.load(spec, SplitSpec())
    assert "--dtype float32 --device cpu" in caught.value.hint


def test_it_applies_on_a_cpu_in_float32_only_when_asked_for():
    def chosen(device, dtype, half_decode=True):
        return "half_decode" in [lever.name for lever in registry.select(Target(device, dtype, "idefics3",
                                                                                  half_decode=half_decode))]

    assert chosen("cpu", "float32") and not chosen("cpu", "float32", half_decode=False)
    assert not chosen("cpu", "bfloat16") and not chosen("cuda", "float32")
