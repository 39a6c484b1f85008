"""What a checkpoint writes, told from its tokenizer's files before the model loads (no torch).

DocTags checkpoints (granite-docling, SmolDocling) carry the DocTags tags as added
tokens; their output is markup with boxes, read with their own instruction, kept
with its special tokens and converted afterwards. The files decide, not the name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmcli.model.weights import file_on_disk
from vlmcli.specs import ModelSpec

DOCTAGS_END = "</doctag>"
# Tags every DocTags tokenizer adds; a chat model's tokenizer has none of them.
DOCTAGS_TOKENS = ("<doctag>", DOCTAGS_END, "<otsl>")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "added_tokens.json")


@dataclass(frozen=True)
class CheckpointProfile:
    doctags: bool = False  # the checkpoint answers a page with DocTags
    context_tokens: int | None = None  # the language model's context window (None: not known before loading)


def read_profile(spec: ModelSpec) -> CheckpointProfile:
    """The profile of the checkpoint `spec` names, from its tokenizer files: on disk, in the hub cache, or, for
    a checkpoint not downloaded yet, its tokenizer_config.json first (the weights follow at load). A checkpoint
    whose files cannot be had is given the plain profile; loading it then says what is wrong."""
    path = next((found for name in _TOKENIZER_FILES if (found := file_on_disk(spec, name)) is not None), None)
    path = path or _download(spec, "tokenizer_config.json")
    if path is None:
        return CheckpointProfile()
    text = path.read_text(encoding="utf-8", errors="replace")
    return CheckpointProfile(doctags=all(f'"{token}"' in text for token in DOCTAGS_TOKENS),
                             context_tokens=_context_tokens(file_on_disk(spec, "config.json")))


def context_tokens(config: Any) -> int | None:
    """The language model's context window from a checkpoint's config (an object or its JSON as a dict)."""
    def get(holder: Any, key: str) -> Any:
        return holder.get(key) if isinstance(holder, dict) else getattr(holder, key, None)

    text_config = get(config, "text_config") or config
    tokens = get(text_config, "max_position_embeddings") or get(config, "max_position_embeddings")
    return tokens if isinstance(tokens, int) and tokens > 0 else None


def _context_tokens(config_file: Path | None) -> int | None:
    if config_file is None:
        return None
    try:
        return context_tokens(json.loads(config_file.read_text(encoding="utf-8")))
    except (OSError, ValueError):  # a damaged config: loading the model says what is wrong with it
        return None


def read_model_type(spec: ModelSpec) -> str | None:
    """The checkpoint's config.json `model_type` (its family), found as `read_profile` finds the tokenizer's
    files; None if the file cannot be had or read (loading it then says what is wrong)."""
    path = file_on_disk(spec, "config.json") or _download(spec, "config.json")
    try:
        model_type = json.loads(path.read_text(encoding="utf-8")).get("model_type") if path else None
    except (OSError, ValueError, AttributeError):
        return None
    return model_type if isinstance(model_type, str) else None


def has_doctags(tokenizer: Any) -> bool:
    """True if a loaded tokenizer has the DocTags tags as single tokens."""
    vocabulary = tokenizer.get_vocab()
    return all(token in vocabulary for token in DOCTAGS_TOKENS)


def _download(spec: ModelSpec, filename: str) -> Path | None:
    if spec.offline or Path(spec.model_id).expanduser().is_dir():
        return None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()  # its retries would be lines on stderr; loading says what went wrong

    try:
        return Path(hf_hub_download(spec.model_id, filename, revision=spec.revision))
    except (HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError, OSError, ValueError):
        return None
