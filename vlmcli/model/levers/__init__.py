"""Speed and memory levers beside transformers' plain path, each measured by benchmarks/speed.py (figures
in the README, "Performance") and each giving transformers' own result (tested; half_decode, opt-in, to
float16 rounding):

- attention: the vision tower's attention on a CPU in bf16, computed as eager does, a few heads at a time;
- packed_linear: the vision tower's linear layers on an x86 CPU in float32, prepacked for oneDNN;
- patch_layout: the vision tower's residual stream laid out contiguously on a CPU, so no layer norm copies it;
- split_decode: the language model's decode products on a CPU in float32, run on all of torch's threads;
- half_decode: float16 weights for the decode, opt-in (`--decode-dtype float16`, lossy);
- image_features: a page's sub-images encoded a few at a time ahead of `generate`;
- lean_processor: Idefics3's image processor making its float copies one sub-image at a time;
- heap: glibc's heap given back to the OS after the load and each page's preprocessing.
"""
