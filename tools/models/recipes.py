"""Reference runs: each family through plain transformers, the way its model card runs it.

`RECIPES[name](model, processor, image, max_new_tokens=...)` returns the generated token ids (prompt excluded,
end token included when generated) and the text decoded as the card decodes it. vlmcli's acceptance tests compare
its tokens with these. Decoding is greedy everywhere: where a card samples (LightOnOCR-2 at temperature 0.2,
olmOCR-2 at 0.1, Qwen3-VL's Instruct settings) the recipe passes `do_sample=False`, which the cards allow for
OCR and which makes tokens comparable. `load(path)` gives the model and processor of a checkpoint folder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlmcli.model.image_only import load_processor

OLMOCR_PROMPT = (  # olmocr.prompts.build_no_anchoring_v4_yaml_prompt(), the prompt olmOCR-2 was trained on
    "Attached is one page of a document that you must process. Just return the plain text representation of this "
    "document as if you were reading it naturally. Convert equations to LateX and tables to HTML.\n"
    "If there are any figures or charts, label them with the following markdown syntax ![Alt text describing the "
    "contents of the figure](page_startx_starty_width_height.png)\n"
    "Return your output as markdown, with a front matter section on top specifying values for the "
    "primary_language, is_rotation_valid, rotation_correction, is_table, and is_diagram parameters.")
OLMOCR_LONGEST_PX = 1288  # the card renders pages with target_longest_image_dim=1288
NANONETS_PROMPT = (  # Nanonets-OCR card
    "Extract the text from the above document as if you were reading it naturally. Return the tables in html "
    "format. Return the equations in LaTeX representation. If there is an image in the document and image caption "
    "is not present, add a small description of the image inside the <img></img> tag; otherwise, add the image "
    "caption inside <img></img>. Watermarks should be wrapped in brackets. Ex: <watermark>OFFICIAL COPY</watermark>. "
    "Page numbers should be wrapped in brackets. Ex: <page_number>14</page_number> or "
    "<page_number>9/22</page_number>. Prefer using ☐ and ☑ for check boxes.")
PADDLE_TASKS = {"ocr": "OCR:", "table": "Table Recognition:", "formula": "Formula Recognition:",
                "chart": "Chart Recognition:"}
GLM_TASKS = {"text": "Text Recognition:", "formula": "Formula Recognition:", "table": "Table Recognition:"}


@dataclass(frozen=True)
class Result:
    token_ids: list[int]
    text: str


def load(path, dtype: torch.dtype = torch.float32):
    """The checkpoint's model (eval, `dtype`) and processor (image-only where torchvision is missing)."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype).eval()
    return model, load_processor(path)


def _generate(model, inputs, max_new_tokens: int) -> list[int]:
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return out[0, inputs["input_ids"].shape[1]:].tolist()


def _chat_inputs(processor, messages):
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                         return_tensors="pt")


def lighton_ocr(model, processor, image, *, max_new_tokens: int = 1024) -> Result:
    # Card: conversation = [{"role": "user", "content": [{"type": "image", "url": url}]}]
    # inputs = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True,
    #                                        return_dict=True, return_tensors="pt")
    # output_ids = model.generate(**inputs, max_new_tokens=1024)
    # processor.decode(output_ids[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    # The bbox variants take the same input and write `![image](image_N.png)x1,y1,x2,y2` (0-1000) in the text.
    inputs = _chat_inputs(processor, [{"role": "user", "content": [{"type": "image", "image": image}]}])
    ids = _generate(model, inputs, max_new_tokens)
    return Result(ids, processor.decode(ids, skip_special_tokens=True))


def paddleocr_vl(model, processor, image, *, task: str = "ocr", max_new_tokens: int = 100) -> Result:
    # transformers docs: messages = [{"role": "user", "content": [{"type": "image", "url": ...},
    #                                                              {"type": "text", "text": "OCR:"}]}]
    # inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
    #                                        return_tensors="pt")
    # outputs = model.generate(**inputs, max_new_tokens=100)
    # processor.decode(outputs[0][inputs["input_ids"].shape[-1]:-1])
    # The docs' [-1] drops the final </s>; here it is dropped only when generated (not a cut-off token).
    inputs = _chat_inputs(processor, [{"role": "user", "content": [
        {"type": "image", "image": image}, {"type": "text", "text": PADDLE_TASKS[task]}]}])
    ids = _generate(model, inputs, max_new_tokens)
    kept = ids[:-1] if ids and ids[-1] == processor.tokenizer.eos_token_id else ids
    return Result(ids, processor.decode(kept))


def glm_ocr(model, processor, image, *, task: str = "text", max_new_tokens: int = 8192) -> Result:
    # Card: messages = [{"role": "user", "content": [{"type": "image", "url": "test_image.png"},
    #                                                {"type": "text", "text": "Text Recognition:"}]}]
    # inputs = processor.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
    #                                        return_dict=True, return_tensors="pt")
    # inputs.pop("token_type_ids", None)
    # generated_ids = model.generate(**inputs, max_new_tokens=8192)
    # processor.decode(generated_ids[0][inputs["input_ids"].shape[1]:], skip_special_tokens=False)
    inputs = _chat_inputs(processor, [{"role": "user", "content": [
        {"type": "image", "image": image}, {"type": "text", "text": GLM_TASKS[task]}]}])
    inputs.pop("token_type_ids", None)
    ids = _generate(model, inputs, max_new_tokens)
    return Result(ids, processor.decode(ids, skip_special_tokens=False))


def qwen2_5_vl(model, processor, image, *, question: str = "Describe this image.",
               max_new_tokens: int = 128) -> Result:
    # Card (Qwen2.5-VL-7B-Instruct): messages = [{"role": "user", "content": [{"type": "image", "image": ...},
    #                                                                         {"type": "text", "text": ...}]}]
    # text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # image_inputs, video_inputs = process_vision_info(messages)
    # inputs = processor(text=[text], images=image_inputs, videos=video_inputs, padding=True, return_tensors="pt")
    # generated_ids = model.generate(**inputs, max_new_tokens=128)
    # processor.batch_decode(trimmed, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    # qwen_vl_utils' process_vision_info rounds the image to multiples of 28 px within the same pixel bounds as the
    # processor, which does that itself: the image goes to the processor as it is.
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], images=[image], padding=True, return_tensors="pt")
    ids = _generate(model, inputs, max_new_tokens)
    return Result(ids, processor.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False))


def olmocr2(model, processor, image, *, max_new_tokens: int = 8000) -> Result:
    # Card (olmOCR-2-7B-1025): the page rendered with target_longest_image_dim=1288, then
    # messages = [{"role": "user", "content": [{"type": "text", "text": build_no_anchoring_v4_yaml_prompt()},
    #                                          {"type": "image_url", "image_url": {"url": ...}}]}]
    # text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # inputs = processor(text=[text], images=[main_image], padding=True, return_tensors="pt")
    # output = model.generate(**inputs, temperature=0.1, max_new_tokens=..., do_sample=True)  (greedy here)
    # processor.tokenizer.batch_decode(output[:, prompt_length:], skip_special_tokens=True)
    scale = OLMOCR_LONGEST_PX / max(image.size)
    page = image.resize((round(image.width * scale), round(image.height * scale))) if scale < 1 else image
    messages = [{"role": "user", "content": [{"type": "text", "text": OLMOCR_PROMPT}, {"type": "image"}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], images=[page], padding=True, return_tensors="pt")
    ids = _generate(model, inputs, max_new_tokens)
    return Result(ids, processor.tokenizer.decode(ids, skip_special_tokens=True))


def nanonets_ocr2(model, processor, image, *, max_new_tokens: int = 15000) -> Result:
    # Card: messages = [{"role": "system", "content": "You are a helpful assistant."},
    #                   {"role": "user", "content": [{"type": "image", "image": f"file://{image_path}"},
    #                                                {"type": "text", "text": prompt}]}]
    # text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # inputs = processor(text=[text], images=[image], padding=True, return_tensors="pt")
    # output_ids = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    # processor.batch_decode(generated_ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": NANONETS_PROMPT}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], images=[image], padding=True, return_tensors="pt")
    ids = _generate(model, inputs, max_new_tokens)
    return Result(ids, processor.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True))


def deepseek_ocr2(model, processor, image, *, grounding: bool = True, question: str | None = None,
                  max_new_tokens: int = 8192) -> Result:
    # transformers docs (no chat template):
    # inputs = processor(images=image, text="<image>\n<|grounding|>Convert the document to markdown.",
    #                    return_tensors="pt")
    # generate_ids = model.generate(**inputs, do_sample=False, max_new_tokens=256)
    # processor.decode(generate_ids[0, inputs["input_ids"].shape[1]:], skip_special_tokens=False)
    # Plain OCR: text="<image>\nFree OCR.", decoded with skip_special_tokens=True. The remote-code model also
    # sets no_repeat_ngram_size=35 and 8192 new tokens; the native port's docs do not.
    # A question goes in the same place as the instruction (DeepSeek-OCR's card: "<image>\nDescribe this image
    # in detail."), decoded with its special tokens.
    prompt = "<image>\n<|grounding|>Convert the document to markdown." if grounding else "<image>\nFree OCR."
    prompt = f"<image>\n{question}" if question is not None else prompt
    inputs = processor(images=image, text=prompt, return_tensors="pt")
    ids = _generate(model, inputs, max_new_tokens)
    return Result(ids, processor.decode(ids, skip_special_tokens=not grounding and question is None))


def granite_docling(model, processor, image, *, text: str = "<doclang>", max_new_tokens: int = 4096) -> Result:
    # GraniteDoclingForConditionalGeneration docstring:
    # messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "<doclang>"}]}]
    # prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    # inputs = processor(text=prompt, images=image, return_tensors="pt")
    # generated_ids = model.generate(**inputs, max_new_tokens=4096)
    # processor.decode(generated_ids[0, inputs["input_ids"].shape[1]:], skip_special_tokens=False)
    # `text`: the docstring's "<doclang>", or a question in its place.
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=prompt, images=image, return_tensors="pt")
    ids = _generate(model, inputs, max_new_tokens)
    return Result(ids, processor.decode(ids, skip_special_tokens=False))


def qwen3_vl(model, processor, image, *, question: str = "Read all the text in the image.",
             max_new_tokens: int = 1024) -> Result:
    # Card (Qwen3-VL-2B-Instruct): messages = [{"role": "user", "content": [{"type": "image", "image": url},
    #                                                                       {"type": "text", "text": ...}]}]
    # inputs = processor.apply_chat_template(messages, tokenize=True, add_generation_prompt=True,
    #                                        return_dict=True, return_tensors="pt")
    # generated_ids = model.generate(**inputs, max_new_tokens=128)
    # processor.batch_decode(trimmed, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    inputs = _chat_inputs(processor, [{"role": "user", "content": [
        {"type": "image", "image": image}, {"type": "text", "text": question}]}])
    ids = _generate(model, inputs, max_new_tokens)
    return Result(ids, processor.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False))


RECIPES = {"lighton_ocr": lighton_ocr, "paddleocr_vl": paddleocr_vl, "glm_ocr": glm_ocr, "olmocr2": olmocr2,
           "nanonets_ocr2": nanonets_ocr2, "deepseek_ocr2": deepseek_ocr2, "granite_docling": granite_docling,
           "qwen3_vl": qwen3_vl, "qwen2_5_vl": qwen2_5_vl}
# Which tiny family checkpoint (families.py) each recipe runs on.
RECIPE_FAMILY = {"lighton_ocr": "lighton_ocr", "paddleocr_vl": "paddleocr_vl", "glm_ocr": "glm_ocr",
                 "olmocr2": "qwen2_5_vl", "nanonets_ocr2": "qwen2_5_vl", "deepseek_ocr2": "deepseek_ocr2",
                 "granite_docling": "granite_docling", "qwen3_vl": "qwen3_vl", "qwen2_5_vl": "qwen2_5_vl"}
