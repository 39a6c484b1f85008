"""The device, compute dtype and levers a load uses, decided before the model loads (torch only where it decides).

The resume manifest's fingerprint names them (cache/keys.py) and `load` uses exactly
this, so a page is recorded under the settings it was read with, not under `auto`.
Torch is imported only where its answer is needed: a torch build with a GPU backend
(CUDA or ROCm, named in its version.py; MPS on macOS), or one already imported. A
CPU-only build resolves from /proc/cpuinfo alone, so planning a run and skipping its
done pages costs no torch import (seconds).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import runpy
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from vlmcli.errors import DependencyError, UsageError
from vlmcli.model.cpu import cpu_flags
from vlmcli.model.levers import registry
from vlmcli.model.levers.registry import Lever, Target
from vlmcli.model.profile import load_model_type
from vlmcli.specs import DecodeDType, Device, DType, ModelSpec, Quant


@dataclass(frozen=True)
class Resolved:
    device: str  # torch's device string: cpu, cuda, cuda:1 (under torchrun, LOCAL_RANK's), mps
    dtype: str  # the compute dtype's name: float32, bfloat16, float16
    levers: tuple[Lever, ...]  # in the order they are applied
    target: Target

    @property
    def lever_names(self) -> tuple[str, ...]:
        return tuple(lever.name for lever in self.levers)

    def settings(self, parts: frozenset[str] | None = None) -> dict:
        """What decides the numbers beside the checkpoint and the options: the device type, the dtype, and the
        levers (those that change one of `parts`, or all of them)."""
        return {"device": self.target.device, "dtype": self.dtype,
                "levers": [lever.name for lever in self.levers if parts is None or lever.changes in parts]}

    def line(self, family: str | None = None) -> str:
        """One line for -v: the model family the run uses (`generic`: a checkpoint no profile knows, read through
        its own chat template), the device, dtype and levers."""
        named = f"family: {family}; " if family else ""
        return f"{named}{settings_line(self.settings())} ({registry.SKIP_ENV} turns them off)"


def settings_line(settings: dict) -> str:
    """`Resolved.settings()` in words: `cpu, float32; levers: packed_linear, ...`."""
    return f"{settings['device']}, {settings['dtype']}; levers: {', '.join(settings['levers']) or 'none'}"


def resolve(spec: ModelSpec, *, for_training: bool = False, skip: frozenset[str] | None = None,
            model_type: str | None = None) -> Resolved:
    """What a load of `spec` uses. `skip`: levers turned off (default: `VLMCLI_SKIP_LEVERS`); `model_type`: the
    family when its config is loaded already (default: read from the checkpoint's config.json)."""
    device = device_name(spec.device)
    dtype = dtype_name(spec.dtype, device, for_training)
    target = Target(device=device.partition(":")[0], dtype=dtype,
                    model_type=model_type if model_type is not None else load_model_type(spec),
                    quantized=spec.quantize is not Quant.none,
                    half_decode=spec.decode_dtype is DecodeDType.float16 and not for_training,
                    cpu_flags=cpu_flags(), for_training=for_training)
    if target.half_decode and not registry.BY_NAME["half_decode"].fits(target):
        computes = f"{spec.quantize.value} weights" if target.quantized else dtype
        raise UsageError(f"--decode-dtype float16 is for float32 on a CPU; this run computes in {computes} on "
                         f"{target.device}", hint="leave out --decode-dtype (this dtype's decode already reads 2-byte "
                                                  "or smaller weights), or run with --dtype float32 --device cpu")
    levers = registry.select(target, registry.skipped() if skip is None else skip)
    return Resolved(device, dtype, levers, target)


def device_name(device: Device) -> str:
    """The torch device; under torchrun/accelerate each process takes the GPU of its LOCAL_RANK."""
    if device is Device.cpu or (device is Device.auto and not torch_may_see_a_gpu()):
        return "cpu"
    import torch

    if device in (Device.auto, Device.cuda) and torch.cuda.is_available() and "LOCAL_RANK" in os.environ:
        return f"cuda:{os.environ['LOCAL_RANK']}"
    if device is Device.auto:
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    if device is Device.cuda and not torch.cuda.is_available():
        raise DependencyError("--device cuda was asked for but CUDA is not available",
                              hint="use --device cpu, or install a CUDA build of torch")
    if device is Device.mps and not torch.backends.mps.is_available():
        raise DependencyError("--device mps was asked for but MPS is not available", hint="use --device cpu")
    return device.value


def dtype_name(dtype: DType, device: str, for_training: bool = False) -> str:
    """`auto` picks what runs fast: bf16 on GPUs that have it, float32 on CPUs without native bf16.

    Training on a CPU stays in float32 whatever the CPU: bf16 weights there would also mean bf16 optimizer updates.
    """
    if dtype is not DType.auto:
        return dtype.value
    if device.startswith("cuda"):
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device == "mps":
        return "float16"
    return "bfloat16" if cpu_has_native_bf16() and not for_training else "float32"


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 matrix instructions (AVX512-BF16, AMX); elsewhere bf16 matmuls are emulated."""
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def torch_may_see_a_gpu() -> bool:
    """False only for a torch build with no GPU backend, which then never has to be imported to say so."""
    if "torch" in sys.modules or platform.system() == "Darwin":
        return True
    return _build_has_gpu_backend()


@cache
def _build_has_gpu_backend() -> bool:
    """From torch's version.py (assignments only, run on its own: importing it would import torch)."""
    found = importlib.util.find_spec("torch")
    if found is None or not found.submodule_search_locations:
        return False  # no torch: loading says so
    try:
        values = runpy.run_path(str(Path(next(iter(found.submodule_search_locations))) / "version.py"))
    except Exception:  # noqa: BLE001 - an unusual build: let torch itself answer
        return True
    return bool(values.get("cuda") or values.get("hip"))
