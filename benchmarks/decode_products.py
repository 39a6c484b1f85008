"""One decode step's matrix products, nn.Linear against SplitDecodeLinear, with each thread count torch can use.

    .venv/bin/python -m benchmarks.decode_products [--layers 30] [--rounds 9] [--rows 1 8 64] [--split-up-to N]

The weights have SmolLM2-135M's shapes (SmolVLM-256M's language model: per layer q,
k, v, o, gate, up, down, and the 49,280 x 576 output layer; 538 MB in float32),
random, so a step reads them from memory as a real decode step does. `--rows`: the
rows each product multiplies (one per sequence decoded together). Prints the median
milliseconds per step and the bytes read per second, one line per path, row count
and thread count, and the speedup of the split path. `--split-up-to N` splits
products of up to N rows instead of vlmcli's SPLIT_ROWS (to find that threshold:
beyond it vlmcli's layers are nn.Linear). Run from the repository root.
"""

from __future__ import annotations

import argparse
import statistics
import time

HIDDEN, KV, INTERMEDIATE, VOCAB = 576, 192, 1536, 49280


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--rows", type=int, nargs="+", default=[1])
    parser.add_argument("--split-up-to", type=int, help="rows up to which products are split (default: vlmcli's)")
    args = parser.parse_args()
    import torch

    from vlmcli.model.levers import split_decode

    if args.split_up_to:
        split_decode.SPLIT_ROWS = args.split_up_to
    shapes = [(HIDDEN, HIDDEN), (KV, HIDDEN), (KV, HIDDEN), (HIDDEN, HIDDEN), (INTERMEDIATE, HIDDEN),
              (INTERMEDIATE, HIDDEN), (HIDDEN, INTERMEDIATE)] * args.layers + [(VOCAB, HIDDEN)]
    plain = [torch.nn.Linear(columns, out_features, bias=False) for out_features, columns in shapes]
    holder = torch.nn.Module()
    holder.model = torch.nn.Module()
    holder.model.text_model = torch.nn.ModuleList(plain)
    split_decode.split_language_model(holder)
    split = list(holder.model.text_model)
    weight_bytes = sum(layer.weight.numel() * 4 for layer in plain)
    threads_max = torch.get_num_threads()
    print(f"{len(shapes)} products, {weight_bytes / 1e6:.0f} MB of float32 weights per step, "
          f"split up to {split_decode.SPLIT_ROWS} rows", flush=True)
    for rows in args.rows:
        inputs = {size: torch.randn(rows, 1, size) for size in (HIDDEN, INTERMEDIATE)}
        for threads in sorted({1, threads_max}):
            torch.set_num_threads(threads)
            times = {name: _step_ms(layers, inputs, args.rounds) for name, layers in
                     (("nn.Linear", plain), ("SplitDecodeLinear", split))}
            for name, ms in times.items():
                print(f"rows={rows} threads={threads} {name:18s} {ms:7.1f} ms/step "
                      f"{weight_bytes / ms / 1e6:5.1f} GB/s")
            speedup = times["nn.Linear"] / times["SplitDecodeLinear"]
            print(f"rows={rows} threads={threads} split speedup {speedup:.2f}x", flush=True)


def _step_ms(layers: list, inputs: dict, rounds: int) -> float:
    import torch

    def step() -> None:
        for layer in layers:
            layer(inputs[layer.in_features])

    with torch.inference_mode():
        step()
        seconds = []
        for _ in range(rounds):
            started = time.perf_counter()
            step()
            seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1e3


if __name__ == "__main__":
    main()
