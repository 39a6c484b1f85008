#!/usr/bin/env bash
# llama.cpp for benchmarks/speed.py's llama.cpp rows (optional; about 30 minutes of compiling on 2 cores):
# builds llama-mtmd-cli and llama-quantize from the llama.cpp vendored in the PyPI sdist of llama-cpp-python
# (no other source is reachable here), then converts CHECKPOINT with that tree's convert_hf_to_gguf.py.
#
#   bash benchmarks/llamacpp.sh [CHECKPOINT]    # default /tmp/standin (python -m tools.models standin /tmp/standin)
#
# Writes under ${VLMCLI_LLAMA_CPP:-~/.cache/vlmcli/llama.cpp}: src/ (the sdist), build/bin/ (the tools),
# gguf/<checkpoint name>/ (text-f32.gguf, text-q8_0.gguf, mmproj-f32.gguf).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.3.36
CHECKPOINT=$(realpath "${1:-/tmp/standin}")
HOME_DIR=${VLMCLI_LLAMA_CPP:-$HOME/.cache/vlmcli/llama.cpp}
PY=${PYTHON:-.venv/bin/python}
SRC=$HOME_DIR/src/llama_cpp_python-$VERSION/vendor/llama.cpp
OUT=$HOME_DIR/gguf/$(basename "$CHECKPOINT")
mkdir -p "$HOME_DIR/src" "$OUT"

if [ ! -d "$SRC" ]; then
  "$PY" -m pip download --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$HOME_DIR/src"
  tar -xzf "$HOME_DIR/src/llama_cpp_python-$VERSION.tar.gz" -C "$HOME_DIR/src"
fi
# GGML_NATIVE: the kernels for this machine's CPU flags (AVX2 here), as a user building it would get.
SRC=$(realpath "$SRC")
mkdir -p "$HOME_DIR/build" && BUILD=$(realpath "$HOME_DIR/build")
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF > "$HOME_DIR/cmake.log"
cmake --build "$BUILD" -j "$(nproc)" --target llama-mtmd-cli llama-quantize > "$HOME_DIR/build.log"

# The converter reads the text model's architecture from text_config, as SmolVLM's own config.json gives it.
"$PY" -m pip install -q sentencepiece
STAGED=$(mktemp -d)
cp -r "$CHECKPOINT"/. "$STAGED"
"$PY" - "$STAGED/config.json" <<'EOF'
import json, sys
config = json.load(open(sys.argv[1]))
config["text_config"].setdefault("architectures", ["VLlama3ForCausalLM"])
json.dump(config, open(sys.argv[1], "w"), indent=2)
EOF
export PYTHONPATH=$SRC/gguf-py
"$PY" "$SRC/convert_hf_to_gguf.py" "$STAGED" --outtype f32 --outfile "$OUT/text-f32.gguf"
"$PY" "$SRC/convert_hf_to_gguf.py" "$STAGED" --outtype f32 --mmproj --outfile "$OUT/mmproj-f32.gguf"
"$BUILD/bin/llama-quantize" "$OUT/text-f32.gguf" "$OUT/text-q8_0.gguf" Q8_0
rm -rf "$STAGED"
ls -l "$OUT"
