"""Speed and memory levers beside transformers' plain path, each measured by benchmarks/speed.py and each
giving transformers' own result (tested; half_decode, opt-in, to float16 rounding). registry.py lists them in
the order they are applied, says where each applies, and holds the off switch (VLMCLI_SKIP_LEVERS):

- lean_processor: Idefics3's image processor making its float copies one sub-image at a time;
- packed_linear: the vision tower's linear layers on an x86 CPU in float32, prepacked for oneDNN;
- half_decode: float16 weights for the decode, opt-in (`--decode-dtype float16`, lossy);
- split_decode: the language model's decode products on a CPU in float32, run on all of torch's threads;
- heap: glibc's heap given back to the OS after quantizing, the load and each page's preprocessing;
- attention: the vision tower's attention on a CPU in bf16, computed as eager does, a few heads at a time;
- patch_layout: the vision tower's residual stream laid out contiguously on a CPU, so no layer norm copies it;
- sigmoid_gelu: the vision tower's tanh GELU on an x86 CPU in float32, computed as x * sigmoid(2u);
- image_features: a page's sub-images encoded a few at a time ahead of `generate`.

cached_features is not a lever: it is how the page cache stores a page's image features for `vlmcli ask`.
"""
