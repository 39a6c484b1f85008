"""One decode step's matrix products, nn.Linear against SplitDecodeLinear, with each thread count torch can use.

    .venv/bin/python -m benchmarks.decode_products [--layers 30] [--rounds 9]

The weights have SmolLM2-135M's shapes (SmolVLM-256M's language model: per layer q,
k, v, o, gate, up, down, and the 49,280 x 576 output layer; 538 MB in float32),
random, so a step reads them from memory as a real decode step does. Prints the
median milliseconds per step and the bytes read per second, one line per path and
thread count, and the speedup of the split path. Run from the repository root.
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
    args = parser.parse_args()
    import torch

    from vlmcli.model.levers import split_decode

    shapes = [(HIDDEN, HIDDEN), (KV, HIDDEN), (KV, HIDDEN), (HIDDEN, HIDDEN), (INTERMEDIATE, HIDDEN),
              (INTERMEDIATE, HIDDEN), (HIDDEN, INTERMEDIATE)] * args.layers + [(VOCAB, HIDDEN)]
    plain = [torch.nn.Linear(columns, rows, bias=False) for rows, columns in shapes]
    holder = torch.nn.Module()
    holder.model = torch.nn.Module()
    holder.model.text_model = torch.nn.ModuleList(plain)
    split_decode.split_language_model(holder)
    split = list(holder.model.text_model)
    weight_bytes = sum(layer.weight.numel() * 4 for layer in plain)
    inputs = {size: torch.randn(1, 1, size) for size in (HIDDEN, INTERMEDIATE)}
    threads_max = torch.get_num_threads()
    print(f"{len(shapes)} products, {weight_bytes / 1e6:.0f} MB of float32 weights per step", flush=True)
    for threads in sorted({1, threads_max}):
        torch.set_num_threads(threads)
        times = {name: _step_ms(layers, inputs, args.rounds) for name, layers in
                 (("nn.Linear", plain), ("SplitDecodeLinear", split))}
        for name, ms in times.items():
            print(f"threads={threads} {name:18s} {ms:7.1f} ms/step {weight_bytes / ms / 1e6:5.1f} GB/s")
        print(f"threads={threads} split speedup {times['nn.Linear'] / times['SplitDecodeLinear']:.2f}x", flush=True)


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
