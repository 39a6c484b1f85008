"""llama.cpp's multimodal CLI on a GGUF conversion of the checkpoint, for benchmarks/speed.py.

Needs `benchmarks/llamacpp.sh` run once: it builds `llama-mtmd-cli` and `llama-quantize` from the llama.cpp
that the PyPI sdist of llama-cpp-python vendors, and converts the checkpoint with that tree's
`convert_hf_to_gguf.py` (text model f32 and q8_0, vision tower + connector as an f32 mmproj). Without
them the row is skipped with that hint. llama.cpp splits the page itself (Idefics3's slices of
512 px, 64 tokens each); the row reports how many image tokens it encoded, so a difference in visual
tokens shows. Times come from llama.cpp's own verbose log, so the model load is left out as for the
other rows: page = its prompt eval (every slice's encoding, the prefill of their image tokens and of
the text) + the decode.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
from pathlib import Path

HOME = Path(os.environ.get("VLMCLI_LLAMA_CPP", Path.home() / ".cache" / "vlmcli" / "llama.cpp"))
PROMPT = "Transcribe the text of this page."


def gguf_dir(checkpoint: str) -> Path:
    """Where benchmarks/llamacpp.sh keeps a checkpoint's GGUF files."""
    return HOME / "gguf" / Path(checkpoint).resolve().name


def child(checkpoint: str, page: str, tokens: int, text_type: str) -> dict:
    binary, folder = HOME / "build" / "bin" / "llama-mtmd-cli", gguf_dir(checkpoint)
    text, mmproj = folder / f"text-{text_type}.gguf", folder / "mmproj-f32.gguf"
    missing = [str(p) for p in (binary, text, mmproj) if not p.exists()]
    if missing:
        return {"skipped": f"{', '.join(missing)} missing (optional: bash benchmarks/llamacpp.sh {checkpoint})"}
    command = [str(binary), "-m", str(text), "--mmproj", str(mmproj), "--image", page, "-p", PROMPT,
               "-n", str(tokens), "--ignore-eos", "--temp", "0", "-t", str(os.cpu_count()), "--no-warmup", "-v"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    peak_rss_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # llama-mtmd-cli's, not ours
    return {**parse_log(done.stderr), "text_type": text_type, "engine": "llama.cpp", "peak_rss_gb": peak_rss_gb}


def parse_log(log: str) -> dict:
    """Seconds and tokens from llama-mtmd-cli's verbose log: llama_perf_context_print's prompt eval (every chunk:
    the slices' encoding, their image tokens' prefill and the text's) and eval (the decode) lines."""
    encode_ms = [float(ms) for ms in re.findall(r"mtmd batch encoding done in (\d+) ms", log)]
    prompt = re.search(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens", log)
    decode = re.search(r"\beval time =\s*([\d.]+) ms /\s*(\d+) runs", log)
    if not (encode_ms and prompt and decode):
        raise ValueError(f"llama-mtmd-cli's log lacks its timings:\n{log[-2000:]}")
    prompt_ms, decode_ms, runs = float(prompt[1]), float(decode[1]), int(decode[2])
    image_tokens = sum(int(n) for n in re.findall(r"decoding image batch \d+/\d+, n_tokens_batch = (\d+)", log))
    return {"page_s": (prompt_ms + decode_ms) / 1000, "first_token_s": prompt_ms / 1000,
            "vision_s": sum(encode_ms) / 1000, "decode_tok_s": runs / (decode_ms / 1000), "slices": len(encode_ms),
            "image_tokens": image_tokens, "prompt_tokens": int(prompt[2]), "new_tokens": runs + 1}
