"""Memory levers for inference on CPU (measured in benchmarks/speed.py; see README "Performance").

- The vision tower sees a page's sub-images one at a time on a CPU. Each
  sub-image is encoded on its own anyway (attention stays within a sub-image),
  so the result is the same; only the activations held at once shrink (float32,
  13 sub-images of an A4 page: peak 1.73 GiB at 4 per call, 1.59 at 1, and no
  slower: 21 s vs 25 s on 2 cores).
- Quantizing at load frees a full-precision copy of each weight just after
  allocating its small quantized one, so glibc's heap fills with holes it never
  gives back (4-bit load of SmolVLM-256M: peak 1.12 GiB for 0.61 kept). During
  the load, allocations over 64 KiB are mapped on their own and returned when
  freed (peak 0.67 GiB); after it the threshold stays at 32 MiB, where glibc's
  own sliding threshold ends up in a long run anyway.
- After a quantized load through transformers' memory-mapped path (a model not
  yet downloaded), full-precision leftovers (embeddings, norms) can still be
  views into the mapped file, which keeps it resident (about 0.4 GB for
  SmolVLM-256M). Copying them lets it go.
"""

from __future__ import annotations

import ctypes
import gc
from contextlib import contextmanager
from typing import Any, Iterator

import torch
from transformers.modeling_outputs import BaseModelOutput

SUB_IMAGES_PER_BATCH = 1
# On a GPU, one at a time would leave it idle between small launches when many pages are
# read in one batch (32 A4 pages = 416 sub-images); 64 bound the activations (~0.5 GB in bf16).
SUB_IMAGES_PER_BATCH_GPU = 64
M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
GLIBC_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # where glibc's own sliding threshold tops out on 64-bit


def lighten_for_inference(model: Any, device: str) -> None:
    """Both levers, as `model.load` applies them when not training."""
    encode_sub_images_in_batches(model, SUB_IMAGES_PER_BATCH if device == "cpu" else SUB_IMAGES_PER_BATCH_GPU)
    if device == "cpu" and getattr(model, "hf_quantizer", None) is not None:
        release_checkpoint_mapping(model)


def encode_sub_images_in_batches(model: Any, per_batch: int = SUB_IMAGES_PER_BATCH) -> None:
    """Make the vision tower encode at most `per_batch` sub-images at a time."""
    vision = _vision_tower(model)
    if vision is None or getattr(vision, "_vlmcli_batched", False):
        return
    encode_all = vision.forward

    def forward(pixel_values: torch.Tensor, patch_attention_mask: torch.Tensor | None = None, **kwargs: Any):
        if pixel_values.shape[0] <= per_batch:
            return encode_all(pixel_values=pixel_values, patch_attention_mask=patch_attention_mask, **kwargs)
        hidden = [
            encode_all(pixel_values=pixel_values[start:start + per_batch],
                       patch_attention_mask=None if patch_attention_mask is None
                       else patch_attention_mask[start:start + per_batch], **kwargs).last_hidden_state
            for start in range(0, pixel_values.shape[0], per_batch)
        ]
        return BaseModelOutput(last_hidden_state=torch.cat(hidden))

    vision.forward = forward
    vision._vlmcli_batched = True


@contextmanager
def heap_returned_while_quantizing(device: str, quantizing: bool) -> Iterator[None]:
    """Around a quantizing load on a CPU, give freed full-precision weights back to the OS at once."""
    libc = _libc() if quantizing and device == "cpu" else None
    if libc is None:
        yield
        return
    libc.mallopt(M_MMAP_THRESHOLD, 64 * 1024)
    try:
        yield
    finally:
        libc.mallopt(M_MMAP_THRESHOLD, GLIBC_MMAP_THRESHOLD_MAX)
        libc.malloc_trim(0)


def release_checkpoint_mapping(model: Any) -> None:
    """Copy full-precision tensors that may still point into the mapped checkpoint file."""
    with torch.no_grad():
        for module in model.modules():
            for name, param in list(module.named_parameters(recurse=False)):
                # bitsandbytes' Params4bit/Int8Params are subclasses and already hold their own memory.
                if type(param) is torch.nn.Parameter and param.device.type == "cpu":
                    param.data = param.data.clone()
            for name, buffer in list(module.named_buffers(recurse=False)):
                if buffer is not None and buffer.device.type == "cpu":
                    module._buffers[name] = buffer.clone()
    gc.collect()
    _return_freed_heap()


def _return_freed_heap() -> None:
    # glibc keeps freed heap pages (from quantizing at load) unless asked to give them back.
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def _libc() -> Any:
    """glibc, or None (musl, macOS, Windows: their allocators need none of this)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def _vision_tower(model: Any) -> Any:
    # Found by class, so a PEFT wrapper around the model changes nothing.
    return next((m for m in model.modules() if type(m).__name__.endswith("VisionTransformer")), None)
