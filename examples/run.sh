#!/usr/bin/env bash
# Install vlmcli and run its main job: transcribe example documents and ask a question about one.
#   bash examples/run.sh            # uses $VLMCLI_MODEL or HuggingFaceTB/SmolVLM-256M-Instruct
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python examples/make_examples.py examples/inputs >/dev/null

model="${VLMCLI_MODEL:-HuggingFaceTB/SmolVLM-256M-Instruct}"
if [ ! -d "$model" ] && ! .venv/bin/python -c \
    "import sys; from huggingface_hub import snapshot_download; snapshot_download(sys.argv[1])" "$model" 2>/dev/null; then
  # No hub (offline machines, CI): a random-weight model of the same architecture shows the pipeline runs.
  echo "run.sh: cannot download $model; using a random-weight stand-in of SmolVLM-256M (its text is noise)" >&2
  model=.cache/standin
  [ -f "$model/config.json" ] || .venv/bin/python -m tools.models standin "$model" --no-check >&2
fi

set -x
.venv/bin/vlmcli ocr examples/inputs/letter.pdf --model "$model" --max-new-tokens 48 -v
.venv/bin/vlmcli ocr examples/inputs/two-pages.pdf examples/inputs/note.jpg --model "$model" --max-new-tokens 24 \
  --format json -o examples/inputs/out
.venv/bin/vlmcli ask examples/inputs/letter.png "What is the total due?" --model "$model" --max-new-tokens 24
