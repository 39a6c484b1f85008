"""glibc's heap during inference on a CPU (ctypes, torch).

- Reading the weights, and the processor's work on a page, leave freed
  buffers in glibc's heap; they are given back after each.
- Quantizing at load frees a full-precision copy of each weight just after
  allocating its small quantized one, so glibc's heap fills with holes it never
  gives back. During the load, allocations over 64 KiB are mapped on their own
  and returned when freed; after it the threshold stays at 32 MiB, where glibc's
  own sliding threshold ends up in a long run anyway (a lower one slows pages).
- After a quantized load through transformers' memory-mapped path (a model not
  yet downloaded), full-precision leftovers (embeddings, norms) can still be
  views into the mapped file, which keeps it resident. Copying them lets it go.
"""

from __future__ import annotations

import ctypes
import gc
from contextlib import contextmanager
from typing import Any, Iterator

import torch

M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
GLIBC_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # where glibc's own sliding threshold tops out on 64-bit


def lighten_for_inference(model: Any, device: str) -> None:
    """What loading does after loading a model for inference on `device`."""
    if device != "cpu":
        return
    if getattr(model, "hf_quantizer", None) is not None:
        release_checkpoint_mapping(model)  # which gives the heap back too
    else:
        return_freed_heap()


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
    return_freed_heap()


def return_freed_heap() -> None:
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

