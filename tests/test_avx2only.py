"""benchmarks/avx2only: a process under it sees an AVX2-only CPU, and its real faults still end it."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "avx2only" / "run"
CPUINFO = Path("/proc/cpuinfo")
FLAGS = set(CPUINFO.read_text().split()) if CPUINFO.exists() else set()

pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64" or "cpuid_fault" not in FLAGS or "avx2" not in FLAGS
    or shutil.which("gcc") is None, reason="needs Linux on x86-64 with AVX2, cpuid faulting and gcc")


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    for key in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "LD_PRELOAD"):
        env.pop(key, None)
    return subprocess.run([str(RUN), sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False,
                          timeout=120)


def test_every_library_sees_avx2_and_no_avx512(tmp_path: Path) -> None:
    code = ("import ctypes, torch; print(torch.backends.cpu.get_cpu_capability());"
            "import numpy._core._multiarray_umath as m; print(' '.join(m.__cpu_features__[f] and f or '' "
            "for f in ('AVX2', 'FMA3', 'AVX512F', 'AVX512_SKX')))")
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr
    torch_isa, numpy_features = done.stdout.splitlines()
    assert torch_isa == "AVX2"
    assert numpy_features.split() == ["AVX2", "FMA3"]


def test_a_real_fault_still_ends_the_process(tmp_path: Path) -> None:
    done = _run("import ctypes; ctypes.string_at(0)", tmp_path)
    assert done.returncode in (-signal.SIGSEGV, 128 + signal.SIGSEGV)


def test_faulthandler_still_reports_a_real_fault(tmp_path: Path) -> None:
    done = _run("import faulthandler, ctypes; faulthandler.enable(); ctypes.string_at(0)", tmp_path)
    assert "Segmentation fault" in done.stderr
    assert done.returncode != 0
