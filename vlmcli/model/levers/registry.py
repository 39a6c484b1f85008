"""The speed and memory levers, in the order they are applied, and which of them a load uses (stdlib only).

Each lever names where it applies (device types, compute dtypes, model families, any
other condition), the part of the computation it changes, and its apply functions,
which import their module (and torch) only when called. So choosing the levers of a
run, which the resume manifest's fingerprint names (cache/keys.py), needs no torch.

`VLMCLI_SKIP_LEVERS` turns levers off: a comma-separated list of names, or `all` for
every lever that is on by default (transformers' plain path). Unset or empty: none is
skipped. An unknown name is a usage error, so a typo never passes for a measurement.
`half_decode` is not on by default: `--decode-dtype float16` asks for it, and only
that option turns it off. docs/levers-and-fingerprints.md has the table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from vlmcli.errors import DependencyError, UsageError

SKIP_ENV = "VLMCLI_SKIP_LEVERS"
SKIP_ALL = "all"


@dataclass(frozen=True)
class Target:
    """What decides which levers a load uses, all known before the model loads."""

    device: str  # device type: cpu, cuda, mps
    dtype: str  # compute dtype: float32, bfloat16, float16
    model_type: str | None  # config.json's model_type (None: the checkpoint's config could not be read)
    quantized: bool = False  # --quantize 4bit|8bit
    half_decode: bool = False  # --decode-dtype float16
    cpu_flags: frozenset[str] = frozenset()
    for_training: bool = False


def _always(target: Target) -> bool:
    return True


@dataclass(frozen=True)
class Lever:
    """One lever: where it applies, what it changes, and how it is applied.

    Apply functions, each called in registry order within its stage: `on_processor(processor) -> processor`
    once the processor is loaded; `around_weights(target)`, a context manager around reading the weights;
    `on_model(model, target)` once the weights (and adapters) are in, for inference only. Levers that act on
    each page are asked for by name where the page is built (model/generate.py: `LoadedModel.uses`).
    """

    name: str
    changes: str  # the part whose numbers or memory it changes: pixels, vision, text, memory
    summary: str
    devices: frozenset[str] | None = None  # device types; None: any
    dtypes: frozenset[str] | None = None  # compute dtypes; None: any
    families: frozenset[str] | None = None  # model types; None: any
    when: Callable[[Target], bool] = _always  # any further condition
    inference_only: bool = True
    opt_in: bool = False  # chosen by an option, not by default; the switch does not cover it
    on_processor: Callable[[Any], Any] | None = None
    around_weights: Callable[[Target], Any] | None = None
    on_model: Callable[[Any, Target], Any] | None = None

    def fits(self, target: Target) -> bool:
        return ((self.devices is None or target.device in self.devices)
                and (self.dtypes is None or target.dtype in self.dtypes)
                and (self.families is None or target.model_type in self.families)
                and not (self.inference_only and target.for_training) and self.when(target))


def _lean_processor(processor: Any) -> Any:
    from vlmcli.model.levers.lean_processor import leaner_images

    return leaner_images(processor)


def _pack_linears(model: Any, target: Target) -> None:
    """A torch without the kernels is an error, never a silent plain path under a fingerprint that names them."""
    from vlmcli.model.levers import packed_linear

    if not packed_linear.available():
        raise DependencyError("this torch build has no oneDNN linear kernels, which the packed_linear lever uses",
                              hint=f"set {SKIP_ENV}=packed_linear, or install torch's x86 build from PyPI")
    from vlmcli.model.families import vision_parts

    packed_linear.use_for_inference(model, vision_parts(target.model_type))


def _halve_decode(model: Any, target: Target) -> None:
    from vlmcli.model.levers import half_decode

    half_decode.halve_language_model(model)


def _split_decode(model: Any, target: Target) -> None:
    from vlmcli.model.levers import split_decode

    split_decode.split_language_model(model)


def _heap_while_quantizing(target: Target) -> Any:
    from vlmcli.model.levers import heap

    return heap.heap_returned_while_quantizing(target.device, target.quantized)


def _heap_after_load(model: Any, target: Target) -> None:
    from vlmcli.model.levers import heap

    heap.lighten_for_inference(model, target.device)


def _cpu_attention(model: Any, target: Target) -> None:
    from vlmcli.model.levers import attention

    attention.use_for_inference(model, target.device)


def _sigmoid_gelu(model: Any, target: Target) -> None:
    from vlmcli.model.families import vision_parts
    from vlmcli.model.levers import sigmoid_gelu

    sigmoid_gelu.use_for_inference(model, vision_parts(target.model_type))


def _patch_layout(model: Any, target: Target) -> None:
    from vlmcli.model.levers import patch_layout

    patch_layout.use_for_inference(model, target.device)


CPU = frozenset({"cpu"})
FLOAT32 = frozenset({"float32"})
# The model types whose equivalence tests prove each lever that changes how numbers are computed (tests/test_levers.py
# and each lever's own tests); a family joins a lever when its test does. `heap` changes no number: any family.
IDEFICS = frozenset({"idefics3", "smolvlm", "idefics2"})
# The ~1B OCR families whose vision towers' linear layers are packed (tests/test_family_levers.py).
PACKED_OCR = frozenset({"lighton_ocr", "paddleocr_vl", "glm_ocr"})

# In the order they are applied: packed_linear packs before the heap is given back (packing frees), and
# half_decode and split_decode replace the same layers (the first that fits wins).
LEVERS: tuple[Lever, ...] = (
    Lever("lean_processor", "memory", "Idefics3's image processor makes its float copies one sub-image at a time",
          families=frozenset({"idefics3"}), inference_only=False, on_processor=_lean_processor),
    Lever("packed_linear", "vision", "the vision tower's linear layers prepacked for oneDNN (x86 with AVX2)",
          devices=CPU, dtypes=FLOAT32, families=IDEFICS | PACKED_OCR,
          when=lambda t: "avx2" in t.cpu_flags and not t.quantized,
          on_model=_pack_linears),
    Lever("half_decode", "text", "float16 weights for the decode (--decode-dtype float16, lossy)",
          devices=CPU, dtypes=FLOAT32, families=IDEFICS, when=lambda t: t.half_decode and not t.quantized,
          opt_in=True,
          on_model=_halve_decode),
    Lever("split_decode", "text", "the decode's products split into row blocks run on all of torch's threads",
          devices=CPU, dtypes=FLOAT32, families=IDEFICS, when=lambda t: not t.half_decode, on_model=_split_decode),
    Lever("heap", "memory", "glibc's heap given back after quantizing, the load and each page's preprocessing",
          devices=CPU, inference_only=False, around_weights=_heap_while_quantizing, on_model=_heap_after_load),
    Lever("attention", "vision", "the vision tower's bf16 attention computed as eager does, a few heads at a time",
          devices=CPU, dtypes=frozenset({"bfloat16"}), families=IDEFICS, on_model=_cpu_attention),
    Lever("patch_layout", "vision", "the vision tower's residual stream laid out contiguously",
          devices=CPU, families=IDEFICS, on_model=_patch_layout),
    Lever("sigmoid_gelu", "vision", "the vision tower's tanh GELU computed as x·sigmoid(2u), without a tanh",
          devices=CPU, dtypes=FLOAT32, families=IDEFICS, when=lambda t: "avx2" in t.cpu_flags,
          on_model=_sigmoid_gelu),
    Lever("image_features", "vision", "a page's sub-images encoded a few at a time ahead of generate",
          families=IDEFICS),
)
BY_NAME: dict[str, Lever] = {lever.name: lever for lever in LEVERS}


def skipped(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The levers `VLMCLI_SKIP_LEVERS` turns off (see the module docstring)."""
    text = (os.environ if environ is None else environ).get(SKIP_ENV, "").strip()
    names = {name for name in text.replace(",", " ").split() if name}
    if names == {SKIP_ALL}:
        return frozenset(lever.name for lever in LEVERS if not lever.opt_in)
    choices = [lever.name for lever in LEVERS if not lever.opt_in]
    opt_in = sorted(name for name in names if name in BY_NAME and BY_NAME[name].opt_in)
    if opt_in:
        raise UsageError(f"{SKIP_ENV}: {', '.join(opt_in)} is not on by default; its option turns it on and off",
                         hint="leave out --decode-dtype float16 instead")
    unknown = sorted(names - set(choices))
    if unknown:
        raise UsageError(f"{SKIP_ENV}={text!r}: no lever named {', '.join(unknown)}",
                         hint=f"name levers from {', '.join(choices)}, or `{SKIP_ALL}` for every one; "
                              "unset the variable to use them all")
    return frozenset(names)


def select(target: Target, skip: frozenset[str] = frozenset()) -> tuple[Lever, ...]:
    """The levers a load for `target` uses, in registry order, less those in `skip`."""
    return tuple(lever for lever in LEVERS if lever.name not in skip and lever.fits(target))


def apply_to_processor(levers: tuple[Lever, ...], processor: Any) -> Any:
    for lever in levers:
        if lever.on_processor is not None:
            processor = lever.on_processor(processor)
    return processor


@contextmanager
def around_weights(levers: tuple[Lever, ...], target: Target) -> Iterator[None]:
    with ExitStack() as stack:
        for lever in levers:
            if lever.around_weights is not None:
                stack.enter_context(lever.around_weights(target))
        yield


def apply_to_model(levers: tuple[Lever, ...], model: Any, target: Target) -> None:
    for lever in levers:
        if lever.on_model is not None:
            lever.on_model(model, target)
