#!/usr/bin/env bash
# Show that vlmcli's pipeline teaches a model to read: synthetic documents, a small Idefics3 model
# with random weights, the three `vlmcli finetune` stages, and `vlmcli eval` on held-out sets after each.
#
#   bash examples/learn_to_read.sh            # the full run (about 30 minutes on 2 CPU cores);
#                                             # writes runs/learn_to_read/ and docs/learn_to_read.md
#   QUICK=1 RUN=/tmp/l2r bash examples/learn_to_read.sh   # stage 1 on single characters, about 2 minutes
#                                                         # (the test suite's)
#
#   STAGE1=DIR bash examples/learn_to_read.sh  # stages 2 and 3 (about 15 minutes) from a stage-1 model
#                                             # trained elsewhere: benchmarks/gpu_session.sh PARTS=train brings
#                                             # one back from a GPU as stage1.tgz; writes docs/learn_to_read_gpu.md
#
# SKIP_SETUP=1 skips scripts/setup.sh (venv, poppler, fonts) when it has run already.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SKIP_SETUP:-0}" = 1 ] || bash scripts/setup.sh
PY=${PYTHON:-.venv/bin/python}
VLMCLI=("$PY" -m vlmcli)
RUN=${RUN:-runs/learn_to_read}
QUICK=${QUICK:-0}
STAGE1=${STAGE1:-}
DATA=$RUN/data
CONFIG=examples/learn_to_read/stages.toml
mkdir -p "$RUN/eval"
: > "$RUN/timings.tsv"

timed() {  # timed NAME COMMAND...: run it, record its wall time
  local name=$1 start=$SECONDS
  shift
  "$@"
  printf '%s\t%s\n' "$name" $((SECONDS - start)) >> "$RUN/timings.tsv"
}

# Resolution per kind of input: each is read at the scale it was written at (text 14-20 px).
declare -A FLAGS=(
  [glyphs_heldout]="--no-split --longest-edge 64"
  [lines_heldout]="--split --longest-edge 256" [lines_heldout_newfont]="--split --longest-edge 256"
  [hand_heldout]="--split --longest-edge 256" [hand_heldout_newfont]="--split --longest-edge 256"
  [pages_heldout]="--split --longest-edge 512" [qa_heldout]="--split --longest-edge 384"
)

evaluate() {  # evaluate MODEL_NAME MODEL_DIR SET [VARIANT FLAGS...]
  local name=$1 dir=$2 set=$3 variant=${4:-}
  local -a flags
  if [ -n "$variant" ]; then flags=("${@:5}"); else read -r -a flags <<< "${FLAGS[$set]}"; fi
  "${VLMCLI[@]}" eval --data "$DATA/$set.jsonl" --model "$dir" --offline --max-new-tokens 40 "${flags[@]}" \
    > "$RUN/eval/${name}__${set}${variant:+__$variant}.json"
}

evaluate_all() {  # evaluate_all MODEL_NAME MODEL_DIR SET...
  local name=$1 dir=$2
  shift 2
  for set in "$@"; do evaluate "$name" "$dir" "$set"; done
}

if [ "$QUICK" = 1 ]; then  # one character per 64 px image: the first thing a random model learns to read
  timed data "$PY" -m tools.synthetic "$DATA" --seed 0 --glyphs 3000 --lines 0 --hand 0 --pages 0 --receipts 0 \
    --heldout 60 > /dev/null
  timed model "$PY" -m tools.models learn-to-read "$RUN/model" > /dev/null
  timed eval_untrained evaluate untrained "$RUN/model" glyphs_heldout
  timed stage1 "${VLMCLI[@]}" finetune --stage 1 --data "$DATA/glyphs_train.jsonl" --output "$RUN/stage1" \
    --model "$RUN/model" --config "$CONFIG" --no-split --longest-edge 64 --epochs 2 --offline > "$RUN/stage1.json"
  timed eval_stage1 evaluate stage1 "$RUN/stage1" glyphs_heldout
  exit 0
fi

timed data "$PY" -m tools.synthetic "$DATA" --seed 0 --glyphs 3000 --lines 8000 --hand 4000 --pages 300 --receipts 300 \
  --heldout 50 --max-chars 16 --canvas-px 512 512 --page-text-px 14 20 --line-text-px 14 20 \
  --line-canvas-px 256 64 --receipt-canvas-px 384 384
timed model "$PY" -m tools.models learn-to-read "$RUN/model"
cat "$DATA/lines_train.jsonl" "$DATA/hand_train.jsonl" > "$DATA/stage1.jsonl"  # the Trainer shuffles

SETS=(glyphs_heldout lines_heldout lines_heldout_newfont hand_heldout hand_heldout_newfont pages_heldout qa_heldout)
if [ -n "$STAGE1" ]; then  # the same data recipe; only stage 1 was trained elsewhere
  rm -rf "$RUN/stage1" && cp -r "$STAGE1" "$RUN/stage1"
else
  timed eval_untrained evaluate_all untrained "$RUN/model" "${SETS[@]}"
  # Stage 1 begins with single characters (the QUICK run), the one task the random model learns in minutes
  # here, then goes on to lines from those weights: shapes first, then reading them in order.
  timed glyphs "${VLMCLI[@]}" finetune --stage 1 --data "$DATA/glyphs_train.jsonl" --output "$RUN/glyphs" \
    --model "$RUN/model" --config "$CONFIG" --no-split --longest-edge 64 --epochs 2 --offline > "$RUN/glyphs.json"
  timed eval_glyphs evaluate_all glyphs "$RUN/glyphs" glyphs_heldout lines_heldout hand_heldout
  timed stage1 "${VLMCLI[@]}" finetune --stage 1 --data "$DATA/stage1.jsonl" --output "$RUN/stage1" \
    --from "$RUN/glyphs" --config "$CONFIG" --offline > "$RUN/stage1.json"
fi
timed eval_stage1 evaluate_all stage1 "$RUN/stage1" "${SETS[@]}"
timed stage2 "${VLMCLI[@]}" finetune --stage 2 --data "$DATA/pages_train.jsonl" --output "$RUN/stage2" \
  --from "$RUN/stage1" --config "$CONFIG" --offline > "$RUN/stage2.json"
timed eval_stage2 evaluate_all stage2 "$RUN/stage2" "${SETS[@]}"
timed stage3 "${VLMCLI[@]}" finetune --stage 3 --data "$DATA/qa_train.jsonl" --output "$RUN/stage3" \
  --from "$RUN/stage2" --config "$CONFIG" --offline > "$RUN/stage3.json"
timed eval_stage3 evaluate_all stage3 "$RUN/stage3" "${SETS[@]}"

# The paper's splitting claim, and the visual-token budget: the same model, the same pages.
splitting_and_budget() {
  evaluate stage3 "$RUN/stage3" pages_heldout nosplit --no-split --longest-edge 512
  evaluate stage3 "$RUN/stage3" pages_heldout edge384 --split --longest-edge 384
  evaluate stage3 "$RUN/stage3" pages_heldout edge256 --split --longest-edge 256
}
timed eval_splitting splitting_and_budget
# The same claim on lines, where a stage-1 model that reads them exists (trained with splitting at 256 px).
lines_splitting() {
  evaluate stage1 "$RUN/stage1" lines_heldout edge192 --split --longest-edge 192
  evaluate stage1 "$RUN/stage1" lines_heldout edge128 --split --longest-edge 128
  evaluate stage1 "$RUN/stage1" lines_heldout nosplit --no-split --longest-edge 256
}
if [ -n "$STAGE1" ]; then timed eval_lines_splitting lines_splitting; fi
"$PY" examples/learn_to_read/report.py "$RUN" ${STAGE1:+--stage1-elsewhere} \
  --out "docs/learn_to_read${STAGE1:+_gpu}.md"
