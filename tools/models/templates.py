"""The chat templates of the OCR families' real checkpoints, for the tiny checkpoints and the stand-ins.

Each constant says where it comes from. DeepSeek-OCR-2 has none: its card calls the processor on a plain prompt.
"""

from tools.models.build import GRANITE_CHAT_TEMPLATE

# lightonai/LightOnOCR-2-1B tokenizer_config.json "chat_template", verbatim (a ChatML variant that opens with an
# empty system turn; the image is the whole user turn on the card).
LIGHTON_OCR = (
    "{% set image_count = namespace(value=0) %}\n{% for message in messages %}\n"
    "{% if loop.first and message['role'] != 'system' %}\n<|im_start|>system<|im_end|>\n{% endif %}\n"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}\n"
    "{{ message['content'] }}<|im_end|>\n{% else %}\n{% for content in message['content'] %}\n"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}\n"
    "{% set image_count.value = image_count.value + 1 %}\n{% if add_vision_id %}\n"
    "Picture {{ image_count.value }}:\n{% endif -%}\n<|image_pad|>\n{%- elif 'text' in content %}\n"
    "{{ content['text'] }}\n{% endif %}\n{% endfor %}\n<|im_end|>\n{% endif %}\n{% endfor %}\n"
    "{% if add_generation_prompt %}\n<|im_start|>assistant\n{% endif %}"
)

# PaddlePaddle/PaddleOCR-VL chat_template.jinja (whitespace control as in the file): images first, then the text,
# then "\n"; the prompt ends with "Assistant: ". One public copy sets the image block through a variable
# `image_token` defaulting to the three tokens below; transformers 5 passes the tokenizer's special tokens to the
# template, whose `image_token` is <|IMAGE_PLACEHOLDER|> alone, so the block is written out here, as another copy
# of the file does (that copy, apparently PaddleOCR-VL-1.5's, ends the prompt with "Assistant:\n" instead).
PADDLEOCR_VL = (
    '{%- if not add_generation_prompt is defined -%}{%- set add_generation_prompt = true -%}{%- endif -%}'
    '{%- if not cls_token is defined -%}{%- set cls_token = "<|begin_of_sentence|>" -%}{%- endif -%}'
    '{%- if not eos_token is defined -%}{%- set eos_token = "</s>" -%}{%- endif -%}'
    '{{- cls_token -}}'
    '{%- for message in messages -%}'
    '{%- if message["role"] == "user" -%}{{- "User: " -}}'
    '{%- for content in message["content"] -%}{%- if content["type"] == "image" -%}'
    '{{ "<|IMAGE_START|><|IMAGE_PLACEHOLDER|><|IMAGE_END|>" }}'
    '{%- endif -%}{%- endfor -%}'
    '{%- for content in message["content"] -%}{%- if content["type"] == "text" -%}{{ content["text"] }}'
    '{%- endif -%}{%- endfor -%}{{ "\\n" -}}'
    '{%- elif message["role"] == "assistant" -%}{{- "Assistant: " -}}'
    '{%- for content in message["content"] -%}{%- if content["type"] == "text" -%}{{ content["text"] }}'
    '{%- endif -%}{%- endfor -%}{{ eos_token -}}'
    '{%- elif message["role"] == "system" -%}'
    '{%- for content in message["content"] -%}{%- if content["type"] == "text" -%}{{ content["text"] + "\\n" }}'
    '{%- endif -%}{%- endfor -%}'
    '{%- endif -%}{%- endfor -%}'
    '{%- if add_generation_prompt -%}{{- "Assistant: " -}}{%- endif -%}'
)

# zai-org/GLM-OCR: GLM-4.xV's layout, reconstructed (the jinja file is not stored offline): it renders the prompt
# the card's processor gives, "[gMASK]<sop><|user|>\n<|begin_of_image|><|image|><|end_of_image|>Text Recognition:
# <|assistant|>\n" (Simple-GLM-OCR's re-implementation, checked against the real model there).
GLM_OCR = (
    "[gMASK]<sop>{% for message in messages %}"
    "{% if message['role'] == 'system' %}<|system|>\n{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}<|user|>\n{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|begin_of_image|><|image|><|end_of_image|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% elif message['role'] == 'assistant' %}<|assistant|>\n{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for item in message['content'] %}{% if item['type'] == 'text' %}"
    "{{ item['text'] }}{% endif %}{% endfor %}{% endif %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

# Qwen/Qwen2.5-VL-7B-Instruct chat_template.json (olmOCR-2 and Nanonets-OCR2 ship the same), verbatim: a default
# system turn when the conversation has none.
QWEN2_5_VL = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen/Qwen3-VL-2B-Instruct chat_template.json without its tools branch: no default system turn; the system turn,
# user images as <|vision_start|><|image_pad|><|vision_end|>, ChatML turns.
QWEN3_VL = (
    "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0].content is string %}{{- messages[0].content }}{%- else %}"
    "{%- for content in messages[0].content %}{%- if 'text' in content %}{{- content.text }}{%- endif %}"
    "{%- endfor %}{%- endif %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- set image_count = namespace(value=0) %}{%- set video_count = namespace(value=0) %}"
    "{%- for message in messages %}{%- if message.role == 'user' or message.role == 'assistant' %}"
    "{{- '<|im_start|>' + message.role + '\\n' }}"
    "{%- if message.content is string %}{{- message.content }}{%- else %}{%- for content in message.content %}"
    "{%- if content.type == 'image' or 'image' in content or 'image_url' in content %}"
    "{%- set image_count.value = image_count.value + 1 %}"
    "{%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif content.type == 'video' or 'video' in content %}{%- set video_count.value = video_count.value + 1 %}"
    "{%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif 'text' in content %}{{- content.text }}{%- endif %}{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# ibm-granite docling models: the Granite role layout (the granite-docling-258M template vlmcli already uses).
GRANITE_DOCLING = GRANITE_CHAT_TEMPLATE

BY_FAMILY = {"lighton_ocr": LIGHTON_OCR, "paddleocr_vl": PADDLEOCR_VL, "glm_ocr": GLM_OCR,
             "qwen2_5_vl": QWEN2_5_VL, "qwen3_vl": QWEN3_VL, "granite_docling": GRANITE_DOCLING,
             "deepseek_ocr2": None}
