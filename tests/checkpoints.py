"""Tiny but *real* Idefics2 / Idefics3 (SmolVLM-style) checkpoints, built in code.

Nothing here downloads anything: the tokenizer is trained with `tokenizers` on a few
lines of text, the weights are random, and everything is written with the ordinary
`save_pretrained` APIs so that `AutoProcessor` / `AutoModelForImageTextToText`
load the directory exactly as they would a hub checkpoint.

    python tests/checkpoints.py        # self-check: build, load, generate
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
# Idefics*ImageProcessor names the torchvision backend in transformers 5 and only falls
# back to PIL with a warning; torchvision is not installed here, so ask for PIL directly.
from transformers import (AutoModelForImageTextToText, GenerationConfig, Idefics2Config,
                          Idefics2ImageProcessorPil, Idefics2Processor, Idefics3Config,
                          Idefics3ImageProcessorPil, Idefics3Processor, PreTrainedTokenizerFast)

# SmolVLM-256M-Instruct's chat template, verbatim; one copy, in the package.
from finetune.tiny_model import SMOLVLM_CHAT_TEMPLATE

# Verbatim from HuggingFaceM4/idefics2-8b processor_config.json "chat_template" (also
# idefics2-8b-chatty). Unlike SmolVLM it has no start token: the tokenizer adds <s>.
IDEFICS2_CHAT_TEMPLATE = (
    "{% for message in messages %}{{message['role'].capitalize()}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

FAMILIES = ("idefics3", "idefics2")
# Width of every tiny tower. bitsandbytes' CPU 4-bit kernel (used on AVX512-BF16 CPUs)
# repacks weights in 64-wide blocks along in_features and 32-row blocks along
# out_features, so 32 fails there; 64 with 4 heads / 2 KV heads (k/v out = 32) works.
HIDDEN = 64
ROW_COL_TOKENS = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
# Added after the base vocab, in the order of the real SmolVLM tokenizer (49152..49190).
IDEFICS3_IMAGE_TOKENS = ["<global-img>", *ROW_COL_TOKENS, "<fake_token_around_image>", "<image>"]
# Tokens a real model never generates; their lm_head rows are zeroed (see _quiet_rows).
STRUCTURAL_TOKENS = ["<fake_token_around_image>", "<image>", "<global-img>", *ROW_COL_TOKENS]

# Per family: low-id specials (as in SmolLM2 / Mistral), tokens appended after the BPE
# vocab (as the real checkpoints do), and the tokenizer's bos/eos/pad/unk.
_LAYOUTS = {
    "idefics3": dict(
        base=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        added=[*IDEFICS3_IMAGE_TOKENS, "<end_of_utterance>"],
        bos="<|im_start|>", eos="<end_of_utterance>", pad="<|im_end|>", unk="<|endoftext|>",
    ),
    "idefics2": dict(
        base=["<unk>", "<s>", "</s>"],
        added=["<fake_token_around_image>", "<image>", "<end_of_utterance>"],
        bos="<s>", eos="</s>", pad="<unk>", unk="<unk>",
    ),
}

# Training text for the BPE merges: enough that common words and "\n\n" become single
# tokens (like real tokenizers), small enough that training takes ~milliseconds.
_CORPUS = [
    "The quick brown fox jumps over the lazy dog. What is in this image? Describe the image.",
    "Invoice number 1234, total amount due: 56.78 EUR. Date: 2024-01-31. Thank you!\n\n",
    "User: Read the text in the document.\nAssistant: The document says hello world.\n\n",
    "A photo of a cat sitting on a table, with a red book and a cup of coffee.\n\n",
]


def build_tokenizer(family: str = "idefics3", vocab_size: int = 384) -> PreTrainedTokenizerFast:
    """Byte-level BPE (any text round-trips) carrying the family's special tokens."""
    layout = _LAYOUTS[family]
    tok = Tokenizer(models.BPE())
    # Digits + ByteLevel is SmolLM2's real pre-tokenizer; fine for the Idefics2 stand-in too.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=layout["base"],  # ids 0..2, like the real vocabularies
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer)
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in layout["added"]])
    if family == "idefics2":  # Mistral's tokenizer prepends <s>; SmolVLM's template writes it
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                           special_tokens=[("<s>", 1)])
    return wrap_tokenizer(tok, family)


def wrap_tokenizer(backend: Tokenizer, family: str = "idefics3") -> PreTrainedTokenizerFast:
    """Wrap a `tokenizers.Tokenizer` with the family's bos/eos/pad/unk (SmolVLM: eos is
    <end_of_utterance>, pad <|im_end|>; Idefics2/Mistral: eos </s>, pad <unk>)."""
    layout = _LAYOUTS[family]
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=layout["bos"], eos_token=layout["eos"],
                                   pad_token=layout["pad"], unk_token=layout["unk"])


def token_ids(tokenizer, names: list[str]) -> dict[str, int]:
    """Ids of tokens that must exist as single tokens (raises if one is missing)."""
    ids = {n: tokenizer.convert_tokens_to_ids(n) for n in names}
    missing = [n for n, i in ids.items() if i is None or i == tokenizer.unk_token_id and n != tokenizer.unk_token]
    if missing:
        raise ValueError(f"tokenizer lacks {missing}")
    return ids


def make_generation_config(tokenizer) -> GenerationConfig:
    """Stop on <end_of_utterance> (what chat turns end with) as well as the plain eos."""
    eos = sorted({tokenizer.convert_tokens_to_ids("<end_of_utterance>"), tokenizer.eos_token_id})
    return GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos,
                            pad_token_id=tokenizer.pad_token_id)


def _tower(**extra) -> dict:
    """Shared tiny sizes: 2 layers, 4 heads (head_dim 16), MLP 2x wide."""
    return dict(hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=2, num_attention_heads=4, **extra)


def _text_config(model_type: str, tokenizer) -> dict:
    """Tiny decoder whose vocab and bos/eos/pad ids come from the tokenizer, so they agree."""
    return _tower(model_type=model_type, num_key_value_heads=2, max_position_embeddings=2048, rms_norm_eps=1e-5,
                  tie_word_embeddings=False, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


def make_idefics3_processor(tokenizer, *, longest_edge: int, max_image_size: int, image_splitting: bool,
                            image_seq_len: int) -> Idefics3Processor:
    """SmolVLM-style processor; max_image_size must equal vision_config.image_size."""
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": longest_edge}, max_image_size={"longest_edge": max_image_size},
        do_image_splitting=image_splitting,
    )
    return Idefics3Processor(image_processor, tokenizer, image_seq_len=image_seq_len,
                             chat_template=SMOLVLM_CHAT_TEMPLATE)


def _idefics3_parts(tokenizer, image_size_px: int, longest_edge_px: int, splitting: bool):
    patch, scale = 8, 2
    side = image_size_px // patch
    if image_size_px % patch or side % scale:
        raise ValueError(f"image_size_px must be a multiple of {patch * scale}, got {image_size_px}")
    image_seq_len = side * side // (scale * scale)  # what the connector emits per sub-image
    config = Idefics3Config(
        text_config=_text_config("llama", tokenizer) | dict(rope_theta=100000.0),
        vision_config=_tower(patch_size=patch, image_size=image_size_px),
        scale_factor=scale, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=False,  # as on SmolVLM-256M-Instruct
    )
    processor = make_idefics3_processor(tokenizer, longest_edge=longest_edge_px, max_image_size=image_size_px,
                                        image_splitting=splitting, image_seq_len=image_seq_len)
    return config, processor


def _idefics2_parts(tokenizer, image_size_px: int, longest_edge_px: int, splitting: bool):
    n_latents = 4  # the perceiver resamples every (sub-)image to this many tokens
    config = Idefics2Config(
        text_config=_text_config("mistral", tokenizer),
        # Positions are bucketed, so image_size only sizes the table; use the largest input.
        vision_config=_tower(patch_size=8, image_size=longest_edge_px),
        perceiver_config=dict(hidden_size=HIDDEN, rms_norm_eps=1e-5, resampler_n_latents=n_latents,
                              resampler_depth=1, resampler_n_heads=4, resampler_head_dim=HIDDEN // 4,
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


def force_loop(model, tokenizer, token: str = "a") -> None:
    """Give the model an output layer whose bias always picks `token`: the purest loop."""
    head = model.lm_head
    loop_head = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():
        loop_head.weight.zero_()
        loop_head.bias.fill_(-1.0)
        loop_head.bias[tokenizer.convert_tokens_to_ids(token)] = 1.0
    model.lm_head = loop_head


def save_checkpoint(model, processor, out_dir: Path) -> Path:
    """Write weights (safetensors), configs, tokenizer, processor and chat template."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)  # transformers 5 always writes model.safetensors
    processor.save_pretrained(out_dir)
    return out_dir


def build_tiny_checkpoint(out_dir: Path, family: str = "idefics3", *, seed: int = 0, image_size_px: int = 32,
                          longest_edge_px: int = 64, image_splitting: bool = True) -> Path:
    """Build a deterministic random-weight checkpoint of `family` into `out_dir`.

    idefics3: sub-images of `image_size_px` (a multiple of 16; = vision image_size =
    max_image_size), images first scaled to `longest_edge_px`; image_seq_len =
    (image_size_px/8)^2/4 (4 at the default). idefics2: images kept between
    `image_size_px` (shortest edge) and `longest_edge_px`; image_seq_len = 4 latents.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    tokenizer = build_tokenizer(family)
    parts = _idefics3_parts if family == "idefics3" else _idefics2_parts
    config, processor = parts(tokenizer, image_size_px, longest_edge_px, image_splitting)
    torch.manual_seed(seed)  # random init is the only source of randomness
    model = AutoModelForImageTextToText.from_config(config)
    model.generation_config = make_generation_config(tokenizer)
    _quiet_rows(model, tokenizer)
    return save_checkpoint(model, processor, out_dir)


def _generate(ckpt: Path, image_wh: tuple[int, int], quant=None) -> tuple[int, str]:
    """Chat template -> processor -> generate, as vlmcli does; returns (#<image>, text)."""
    from PIL import Image
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(ckpt)
    model = AutoModelForImageTextToText.from_pretrained(ckpt, trust_remote_code=False, use_safetensors=True,
                                                        quantization_config=quant)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in this image?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=prompt, images=[[Image.new("RGB", image_wh, "white")]], return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    n_image = int((inputs["input_ids"] == model.config.image_token_id).sum())
    return n_image, processor.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def _self_check() -> None:
    """Both families x splitting on/off x several image sizes; fp32, nf4 and int8 loads."""
    import logging
    import tempfile
    import time

    from transformers import BitsAndBytesConfig

    # bitsandbytes logs "MatMul8bitLt: inputs will be cast ..." on every int8 matmul.
    logging.getLogger("bitsandbytes.autograd._functions").setLevel(logging.ERROR)
    quants = {"fp32": None, "int8": BitsAndBytesConfig(load_in_8bit=True), "nf4": BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32)}
    with tempfile.TemporaryDirectory() as tmp:
        for family, splitting in [(f, s) for f in FAMILIES for s in (True, False)]:
            start = time.perf_counter()
            ckpt = build_tiny_checkpoint(Path(tmp) / f"{family}-{splitting}", family, image_splitting=splitting)
            print(f"{family} splitting={splitting}: built in {time.perf_counter() - start:.2f}s")
            for wh, name in [((20, 20), "fp32"), ((60, 200), "fp32"), *(((100, 60), q) for q in quants)]:
                n_image, text = _generate(ckpt, wh, quants[name])
                assert n_image > 0 and text.strip(), (family, splitting, wh, name)
                print(f"  {wh[0]}x{wh[1]} {name}: {n_image} <image> tokens -> {text!r}")


if __name__ == "__main__":
    _self_check()
