"""A small Idefics3 (SmolVLM-architecture) model with random weights, built in code for learning to read.

    python -m finetune.tiny_model OUT_DIR [--seed 0]

Why this size and not SmolLM2-135M as the language half: on a 2-core CPU, one
training step of the 135M-parameter LM over a page's tokens takes seconds, so
30 minutes would see a few hundred examples; a vision side trained from zero
needs tens of thousands. A 3M-parameter model sees that many in minutes. The
tokenizer is one token per character (the synthetic text's alphabet), so the
model learns spelling, not a 49k-entry vocabulary, and character error rate is
what the loss optimises.

Geometry: sub-images of 64 px, 8 px patches, pixel shuffle 2 -> 16 visual tokens
per sub-image. Without splitting a whole image is squeezed into one 64x64
sub-image (the processor's own behaviour), so small text on a page is lost;
with splitting each 64 px tile keeps native resolution.
"""

from __future__ import annotations

import argparse
import string
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, trainers
from transformers import (AutoModelForImageTextToText, GenerationConfig, Idefics3Config, Idefics3ImageProcessorPil,
                          Idefics3Processor, PreTrainedTokenizerFast)

# Verbatim from HuggingFaceTB/SmolVLM-256M-Instruct: the prompts vlmcli builds are the real model's.
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
SUB_IMAGE_PX = 64
PATCH_PX = 8
SHUFFLE = 2
PAPER_LEVEL, INK_SPREAD = 0.9, 0.3  # the processor's image_mean and image_std (pixels scaled to 0..1)
MAX_GRID = 16  # <row_i_col_j> tokens up to 16x16 sub-images (a 1024 px page)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
IMAGE_TOKENS = ["<global-img>", *(f"<row_{i}_col_{j}>" for i in range(1, MAX_GRID + 1) for j in range(1, MAX_GRID + 1)),
                "<fake_token_around_image>", "<image>", "<end_of_utterance>"]


def char_tokenizer() -> PreTrainedTokenizerFast:
    """Characters (printable ASCII and newline), merged only into the words of vlmcli's own instructions.

    The merges make the fixed instructions short (the OCR prompt is 150 characters
    but 30 tokens), so a training step spends its compute on the image and the answer.
    """
    alphabet = [*string.printable[:95], "\n"]
    backend = Tokenizer(models.BPE(unk_token="<|endoftext|>"))
    trainer = trainers.BpeTrainer(vocab_size=len(SPECIALS) + len(alphabet) + 160, special_tokens=SPECIALS,
                                  initial_alphabet=alphabet, show_progress=False)
    backend.train_from_iterator(_instructions() * 8, trainer)
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in IMAGE_TOKENS])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|im_start|>", eos_token="<end_of_utterance>",
                                   pad_token="<|im_end|>", unk_token="<|endoftext|>")


def _instructions() -> list[str]:
    from vlmcli.prompts import HANDWRITING_PROMPT, OCR_PROMPT

    return [OCR_PROMPT, HANDWRITING_PROMPT, "What is the total?", "What is the invoice number?", "What is the date?"]


def build(out_dir: Path, seed: int = 0, longest_edge_px: int = 512, patch_px: int = PATCH_PX,
          shuffle: int = SHUFFLE) -> Path:
    tokenizer = char_tokenizer()
    tokens_per_sub_image = (SUB_IMAGE_PX // patch_px) ** 2 // shuffle**2
    config = Idefics3Config(
        vision_config=dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                           patch_size=patch_px, image_size=SUB_IMAGE_PX),
        text_config=dict(model_type="llama", hidden_size=192, intermediate_size=512, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=8192,
                         rope_theta=10000.0, rms_norm_eps=1e-5, vocab_size=len(tokenizer),
                         tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        scale_factor=shuffle, image_token_id=tokenizer.convert_tokens_to_ids("<image>"), tie_word_embeddings=False,
    )
    # Paper maps to about 0 and ink to strongly negative values. With SigLIP's 0.5/0.5, a page is
    # mostly a constant +1 that drowns the few patches with ink: measured on 2000 images of one
    # centred glyph, this model then learned nothing in 200 steps, and with these constants it
    # learned them (loss 0.12), also when the image was split into 4 sub-images.
    image_processor = Idefics3ImageProcessorPil(size={"longest_edge": longest_edge_px},
                                                max_image_size={"longest_edge": SUB_IMAGE_PX}, do_image_splitting=True,
                                                image_mean=[PAPER_LEVEL] * 3, image_std=[INK_SPREAD] * 3)
    processor = Idefics3Processor(image_processor, tokenizer, image_seq_len=tokens_per_sub_image,
                                  chat_template=SMOLVLM_CHAT_TEMPLATE)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config)
    stop = sorted({tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<end_of_utterance>")})
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=stop,
                                               pad_token_id=tokenizer.pad_token_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--longest-edge", type=int, default=512, help="the processor's default resolution (px)")
    parser.add_argument("--patch-px", type=int, default=PATCH_PX, help="vision patch size")
    parser.add_argument("--shuffle", type=int, default=SHUFFLE, help="pixel-shuffle factor of the connector")
    args = parser.parse_args()
    out = build(args.out_dir, args.seed, args.longest_edge, args.patch_px, args.shuffle)
    model = AutoModelForImageTextToText.from_pretrained(out)
    print(f"{out}: {sum(p.numel() for p in model.parameters()):,} parameters")


if __name__ == "__main__":
    main()
