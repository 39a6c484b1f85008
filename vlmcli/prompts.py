"""Instructions and chat messages (pure): vlmcli's own prompts, which each model family takes or replaces with its
card's (model/families).

Messages use the chat format of transformers and TRL; `user_messages` puts images first, then the instruction,
as the SmolVLM and Idefics model cards do (training data is written in this form; a family reorders it).
"""

from __future__ import annotations

OCR_PROMPT = (
    "Transcribe all the text in this image exactly as written, in reading order. "
    "Keep the line breaks. Do not summarize, translate or add commentary."
)
# What DocTags checkpoints (granite-docling, SmolDocling) were trained to answer with a whole page's DocTags.
DOCTAGS_PROMPT = "Convert this page to docling."
HANDWRITING_PROMPT = (
    "Transcribe the handwritten text in this image exactly as written, in reading order, "
    "keeping the writer's line breaks, spelling and punctuation. Do not add commentary."
)


def user_messages(instruction: str, image_count: int) -> list[dict]:
    """One user turn: `image_count` image slots followed by the instruction."""
    content: list[dict] = [{"type": "image"} for _ in range(image_count)]
    content.append({"type": "text", "text": instruction})
    return [{"role": "user", "content": content}]


NOT_FOUND_REPLY = "NOT FOUND"


def page_question(question: str) -> str:
    """The instruction for answering a question from one page of a document (`ask` over whole documents)."""
    return ("Answer the question using only this page. Reply with the exact words from the page. "
            f"If the page does not contain the answer, reply exactly: {NOT_FOUND_REPLY}.\nQuestion: {question}")
