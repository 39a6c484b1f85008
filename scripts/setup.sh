#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian/Ubuntu machine: poppler for PDFs, a venv, vlmcli and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v pdftoppm >/dev/null || ! command -v pdfinfo >/dev/null; then
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: a bare "torch>=" would let the resolver pull a multi-GB CUDA build.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test,bench]"
