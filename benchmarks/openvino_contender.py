"""OpenVINO as the CPU engine of a page's vision work, for benchmarks/speed.py (needs `pip install openvino`;
int8 weights also `pip install nncf`).

The vision tower and connector (a sub-image's pixels in, its 64 visual tokens out)
are converted with `openvino.convert_model` and compiled for the CPU in float32
(`weights="int8"`: the linear layers' weights compressed to int8 by
`nncf.compress_weights`, per output channel, activations still float32);
vlmcli's own generation then runs the language model on those features. A page's
sub-images go to OpenVINO one at a time, as vlmcli sends them to torch (all of them
before the language model starts, so torch's idle threads do not spin beside it), so the
difference between this row and vlmcli's float32 row is the engine of the vision
work, which is most of a page. The conversion's seconds are reported apart, as a
load. The language model stays in torch: its decode is timed in its own rows.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def child(checkpoint: str, page: str, tokens: int, run_spec: Any, weights: str = "f32") -> dict:
    import numpy
    import openvino
    import torch
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    from benchmarks import speed_report
    from vlmcli import model
    from vlmcli.inputs.documents import page_refs
    from vlmcli.model.generate import generate_from_inputs
    from vlmcli.pipeline.page import prepare_page
    from vlmcli.prompts import OCR_PROMPT

    started = time.perf_counter()
    run = run_spec(checkpoint, "float32", "none", tokens)
    loaded = model.load(run.model, run.split)  # the caller turns vlmcli's vision levers off: transformers' tower
    inputs = prepare_page(loaded, page_refs(Path(page), None, run.pdf)[0], OCR_PROMPT, run).inputs[0]
    example = inputs["pixel_values"][:, :1]
    converted = _converted(loaded.model, example)
    if weights == "int8":
        import nncf

        converted = nncf.compress_weights(converted)  # INT8_ASYM, per output channel: optimum-intel's int8 default
    compiled = openvino.compile_model(converted, "CPU",
                                      {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
    converted_at = time.perf_counter()
    inputs = prepare_page(loaded, page_refs(Path(page), None, run.pdf)[0], OCR_PROMPT, run).inputs[0]
    # Every sub-image through OpenVINO before torch runs again: torch's idle threads would spin beside it.
    pixels = inputs["pixel_values"].flatten(0, 1)
    queue = [torch.from_numpy(compiled(numpy.ascontiguousarray(image[None, None].numpy()))[0])
             for image in pixels if image.any()]

    def ov_features(pixel_values, pixel_attention_mask=None, **_: Any):
        """vlmcli's levers ask for one sub-image's features per call, in page order, padding images skipped."""
        return BaseModelOutputWithPooling(pooler_output=[queue.pop(0) for _ in range(pixel_values.shape[1])])

    loaded.model.get_image_features = ov_features
    prepared_at = time.perf_counter()
    result = generate_from_inputs(loaded, inputs, run.generation)
    return {"load_s": converted_at - started, "page_s": time.perf_counter() - converted_at,
            "first_token_s": prepared_at - converted_at + result.first_token_s,
            "decode_tok_s": speed_report.decode_tok_s(result),
            "image_tokens": result.image_tokens, "prompt_tokens": result.prompt_tokens,
            "new_tokens": result.new_tokens, "dtype": "float32", "weights": weights,
            "engine": f"openvino {openvino.__version__}", "token_ids": list(result.token_ids)}


def _converted(vlm: Any, example: Any) -> Any:
    import openvino
    import torch

    class ImageFeatures(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vlm = vlm

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.vlm.get_image_features(pixel_values=pixel_values).pooler_output[0]

    with torch.no_grad():
        return openvino.convert_model(ImageFeatures().eval(), example_input=(example,))
