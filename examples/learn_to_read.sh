#!/usr/bin/env bash
# Show that vlmcli's pipeline teaches a model to read: synthetic documents, a small Idefics3 model
# with random weights, the three `vlmcli finetune` stages, and `vlmcli eval` on held-out sets after each.
# Each stage after the first replays the data of the stages before it (vlmcli's default, half of the
# draws, each source at its own resolution); the same stages again with --replay 0 show what is lost without.
#
#   bash examples/learn_to_read.sh            # the full run (about 45 minutes on 2 quiet CPU cores);
#                                             # writes runs/learn_to_read/ and docs/learn_to_read.md
#   QUICK=1 RUN=/tmp/l2r bash examples/learn_to_read.sh   # stage 1 on single characters, about 2 minutes
#                                                         # (the test suite's)
#   SHORT=1 RUN=/tmp/l2r bash examples/learn_to_read.sh   # replay in minutes: the single characters, then short
#                                             # stages 1-3 (capped in steps, not minutes) with and without replay;
#                                             # writes docs/learn_to_read_replay.md
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

# Single characters: one 64 px image each, two epochs (stage 1's step cap in stages.toml is for lines).
GLYPHS=(--no-split --longest-edge 64 --epochs 2 --max-steps -1 --offline)

if [ "$QUICK" = 1 ]; then  # one character per 64 px image: the first thing a random model learns to read
  timed data "$PY" -m tools.synthetic "$DATA" --seed 0 --glyphs 3000 --lines 0 --hand 0 --pages 0 --receipts 0 \
    --heldout 60 > /dev/null
  timed model "$PY" -m tools.models learn-to-read "$RUN/model" > /dev/null
  timed eval_untrained evaluate untrained "$RUN/model" glyphs_heldout
  timed stage1 "${VLMCLI[@]}" finetune --stage 1 --data "$DATA/glyphs_train.jsonl" --output "$RUN/stage1" \
    --model "$RUN/model" --config "$CONFIG" "${GLYPHS[@]}" > "$RUN/stage1.json"
  timed eval_stage1 evaluate stage1 "$RUN/stage1" glyphs_heldout
  exit 0
fi

SHORT=${SHORT:-0}
if [ "$SHORT" = 1 ]; then COUNTS=(--lines 2000 --hand 1000 --pages 100 --receipts 100); else
  COUNTS=(--lines 8000 --hand 4000 --pages 300 --receipts 300); fi
timed data "$PY" -m tools.synthetic "$DATA" --seed 0 --glyphs 3000 "${COUNTS[@]}" \
  --heldout 50 --max-chars 16 --canvas-px 512 512 --page-text-px 14 20 --line-text-px 14 20 \
  --line-canvas-px 256 64 --receipt-canvas-px 384 384
timed model "$PY" -m tools.models learn-to-read "$RUN/model"
cat "$DATA/lines_train.jsonl" "$DATA/hand_train.jsonl" > "$DATA/stage1.jsonl"  # the sampler shuffles

SETS=(glyphs_heldout lines_heldout lines_heldout_newfont hand_heldout hand_heldout_newfont pages_heldout qa_heldout)
STAGE_DATA=([1]=stage1 [2]=pages_train [3]=qa_train)
OWN_SET=([1]=lines_heldout [2]=pages_heldout [3]=qa_heldout)
# Stages are capped in optimizer steps (stages.toml), so a busy machine changes the time, not the result;
# SHORT=1 caps them lower.
STEPS=([1]=40 [2]=20 [3]=20)

stage() {  # stage N NAME FROM [FLAGS...]: one stage of the recipe on its data, from the run FROM
  local number=$1 name=$2 from=$3
  local -a cap=()
  if [ "$SHORT" = 1 ]; then cap=(--max-steps "${STEPS[$number]}"); fi
  "${VLMCLI[@]}" finetune --stage "$number" --data "$DATA/${STAGE_DATA[$number]}.jsonl" --output "$RUN/$name" \
    --from "$RUN/$from" --config "$CONFIG" --offline "${cap[@]}" "${@:4}" > "$RUN/$name.json"
}

if [ -n "$STAGE1" ]; then  # the same data recipe; only stage 1 was trained elsewhere
  rm -rf "$RUN/stage1" && cp -r "$STAGE1" "$RUN/stage1"
  # Its run.json names the other machine's files: replay the lines of the same recipe generated here.
  "$PY" -c 'import json, sys; p = sys.argv[1]; info = json.load(open(p)); info["data"] = [{"path": sys.argv[2],
"share": 1.0, "split": True, "longest_edge_px": 256}]; json.dump(info, open(p, "w"), indent=2)' \
    "$RUN/stage1/run.json" "$(realpath "$DATA/stage1.jsonl")"
else
  if [ "$SHORT" = 1 ]; then SETS=(glyphs_heldout); fi
  timed eval_untrained evaluate_all untrained "$RUN/model" "${SETS[@]}"
  # Stage 1 begins with single characters (the QUICK run), the one task the random model learns in minutes
  # here, then goes on to lines from those weights (replaying the characters): shapes first, then reading them.
  timed glyphs "${VLMCLI[@]}" finetune --stage 1 --data "$DATA/glyphs_train.jsonl" --output "$RUN/glyphs" \
    --model "$RUN/model" --config "$CONFIG" "${GLYPHS[@]}" > "$RUN/glyphs.json"
  timed eval_glyphs evaluate_all glyphs "$RUN/glyphs" glyphs_heldout lines_heldout hand_heldout
  timed stage1 stage 1 stage1 glyphs
fi
if [ "$SHORT" = 1 ]; then SETS=(glyphs_heldout "${OWN_SET[1]}"); fi
timed eval_stage1 evaluate_all stage1 "$RUN/stage1" "${SETS[@]}"
for number in 2 3; do
  if [ "$SHORT" = 1 ]; then SETS=(glyphs_heldout "${OWN_SET[$number]}"); fi
  timed "stage$number" stage "$number" "stage$number" "stage$((number - 1))"
  timed "eval_stage$number" evaluate_all "stage$number" "$RUN/stage$number" "${SETS[@]}"
done

# The same stages without replay: what the single characters (and each stage's own task) come to then.
if [ -z "$STAGE1" ]; then
  previous=glyphs
  for number in 1 2 3; do
    timed "stage${number}_noreplay" stage "$number" "stage${number}_noreplay" "$previous" --replay 0
    timed "eval_stage${number}_noreplay" evaluate_all "stage${number}_noreplay" "$RUN/stage${number}_noreplay" \
      glyphs_heldout "${OWN_SET[$number]}"
    previous=stage${number}_noreplay
  done
fi
if [ "$SHORT" = 1 ]; then
  "$PY" examples/learn_to_read/report.py "$RUN" --short --out docs/learn_to_read_replay.md
  exit 0
fi

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
