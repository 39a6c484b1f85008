"""Processors that declare a video processor (Qwen2.5-VL, Qwen3-VL, GLM-OCR's Glm46V), built and loaded without it.

Why AutoProcessor cannot load them without torchvision (transformers 5.25):
1. `AutoProcessor.from_pretrained` resolves the class the checkpoint names (`processor_class` in
   processor_config.json / preprocessor_config.json, else the config's model type) and calls its `from_pretrained`.
2. `ProcessorMixin._resolve_subprocessors` loads every attribute of that class's `__init__` signature:
   `image_processor`, `tokenizer` and `video_processor`. The last goes through `AutoVideoProcessor.from_pretrained`,
   which raises `OSError: Can't load video processor` when the folder has no video processor config (as one saved
   image-only) and, when it has one (every hub checkpoint), resolves `Qwen2VLVideoProcessor` / `Glm46VVideoProcessor`,
   a dummy without torchvision: `ImportError: ... requires the Torchvision library`.
3. Passing `video_processor=None` does not help: `from_pretrained` treats None as "not given", and
   `ProcessorMixin.__init__` checks each attribute against `VideoProcessorMixin`, which transformers only exports
   when torchvision imports (`transformers/__init__.py`), so the check itself fails
   (`AttributeError: type object 'VIDEO_PROCESSOR_MAPPING' has no attribute '_extra_content'`).

The smallest robust way around it: the same class with `video_processor` removed from `__init__`'s signature
(`image_only_class`). ProcessorMixin derives the attribute list from that signature, so `from_pretrained` loads the
image processor, the tokenizer and the chat template from the checkpoint's own files exactly as AutoProcessor
would, and never asks for a video processor. The subclass keeps the original class name, so `save_pretrained`
writes the real `processor_class` and the folder loads with plain AutoProcessor wherever torchvision is installed.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

_IMAGE_ONLY: dict[type, type] = {}


def image_only_class(processor_class: type) -> type:
    """`processor_class` without its video processor: same name, same behaviour for images and text."""
    if processor_class in _IMAGE_ONLY:
        return _IMAGE_ONLY[processor_class]
    if "video_processor" not in processor_class.get_attributes():
        return processor_class

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        # The parent passes video_processor=None on to ProcessorMixin, which zips it away: the attribute list
        # (from this signature) has only image_processor and tokenizer.
        processor_class.__init__(self, image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    subclass = type(processor_class.__name__, (processor_class,), {"__init__": __init__, "__module__": __name__,
                                                                   "__doc__": processor_class.__doc__})
    _IMAGE_ONLY[processor_class] = subclass
    return subclass


def __getattr__(name: str) -> type:
    """`vlmcli.model.image_only.Qwen2_5_VLProcessor` is the image-only class: what pickle looks up to rebuild an
    image-only processor in another process (a Ray worker, a DataLoader worker)."""
    from transformers.models.auto.processing_auto import processor_class_from_name

    processor_class = processor_class_from_name(name) if name.endswith("Processor") else None
    if processor_class is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return image_only_class(processor_class)


def declared_processor_class(model_id: str, **hub_kwargs) -> type | None:
    """The processor class AutoProcessor would build for the checkpoint (a folder, or a hub id in the cache or
    reachable), or None if it names none."""
    from transformers import AutoConfig
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING, processor_class_from_name
    from transformers.utils import cached_file

    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        file = cached_file(model_id, name, _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False, **hub_kwargs)
        if file and (class_name := json.loads(Path(file).read_text(encoding="utf-8")).get("processor_class")):
            return processor_class_from_name(class_name)
    config = AutoConfig.from_pretrained(model_id, **hub_kwargs)
    return PROCESSOR_MAPPING.get(type(config))


def load_processor(model_id: str, *, image_only: bool | None = None, **hub_kwargs):
    """The checkpoint's processor, as `AutoProcessor.from_pretrained(model_id, **hub_kwargs)` builds it.

    Contract: if the processor class the checkpoint declares takes a video processor and torchvision does not
    import (or `image_only=True`), the same class is built without the video processor from the same files (image
    processor on the PIL backend, tokenizer, chat template, processor kwargs); images, text and chat templates
    behave exactly as with AutoProcessor; passing `videos=` then fails. Otherwise this is plain AutoProcessor.
    Raises what AutoProcessor raises for a checkpoint it cannot read.
    """
    from transformers import AutoProcessor

    if image_only is None:
        image_only = not torchvision_imports()
    processor_class = declared_processor_class(model_id, **hub_kwargs) if image_only else None
    if processor_class is None or "video_processor" not in processor_class.get_attributes():
        return AutoProcessor.from_pretrained(model_id, **hub_kwargs)
    return image_only_class(processor_class).from_pretrained(model_id, **hub_kwargs)


@cache
def torchvision_imports() -> bool:
    """Whether torchvision imports here. transformers only checks that it is installed, and the PyPI wheel installs
    beside a CPU torch yet fails on import (`operator torchvision::nms does not exist`); with such an install
    transformers' torchvision-backed image processors fail too, so it has to go (or be the matching CPU build)."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # ImportError, or RuntimeError from a torchvision built for another torch
        return False
    return True
