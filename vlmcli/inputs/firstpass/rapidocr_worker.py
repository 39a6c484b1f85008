"""The RapidOCR side of rapidocr.py: one page image (PNG on stdin) read in a child process.

    python -m vlmcli.inputs.firstpass.rapidocr_worker

Prints one JSON list on stdout: per text line, `[text, score, [[word, score,
[[x, y] x4]], ...]]` in pixels of the image. The detection, direction and
recognition models are the ones in RapidOCR's wheel: nothing is downloaded. A
crash or hang ends this process only; the parent kills it after its timeout.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys

# One thread (the model has the other cores), the wheel's own models, and nothing on stdout but the result.
PARAMS = {"Global.log_level": "error", "Global.return_word_box": True,
          "EngineConfig.onnxruntime.intra_op_num_threads": 1, "EngineConfig.onnxruntime.inter_op_num_threads": 1}


def main() -> int:
    png = sys.stdin.buffer.read()
    with contextlib.redirect_stdout(sys.stderr):
        from PIL import Image
        from rapidocr import RapidOCR

        image = Image.open(io.BytesIO(png)).convert("RGB")
        result = RapidOCR(params=PARAMS)(image, return_word_box=True)
    lines = []
    for text, score, words in zip(result.txts or (), result.scores or (), result.word_results or ()):
        lines.append([text, float(score), [[word, float(word_score), [[float(x), float(y)] for x, y in box]]
                                           for word, word_score, box in words]])
    sys.stdout.write(json.dumps(lines, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
