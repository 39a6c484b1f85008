"""A checkpoint's family and context, told from its config and tokenizer files before the model loads (no torch).

The family (model/families) comes from config.json's `model_type` and marks in the
tokenizer's files (DocTags checkpoints carry the DocTags tags as added tokens, on the
Idefics3 architecture); the files decide, not the name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmcli.model.families import Family, by_name, recognise
from vlmcli.model.families.idefics import SMOLVLM
from vlmcli.model.weights import file_on_disk
from vlmcli.specs import ModelSpec

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "added_tokens.json")


@dataclass(frozen=True)
class CheckpointProfile:
    family: Family = SMOLVLM  # how the checkpoint is asked and read (the default model's, until its files say)
    context_tokens: int | None = None  # the language model's context window (None: not known before loading)

    @property
    def doctags(self) -> bool:
        return self.family.writes_doctags


def load_profile(spec: ModelSpec) -> CheckpointProfile:
    """The profile of the checkpoint `spec` names, from its config and tokenizer files: on disk, in the hub cache,
    or, for a checkpoint not downloaded yet, its config.json and tokenizer_config.json first (the weights follow at
    load). A checkpoint whose files cannot be had keeps the default profile; loading it then says what is wrong."""
    named = by_name(spec.family) if spec.family else None
    path = next((found for name in _TOKENIZER_FILES if (found := file_on_disk(spec, name)) is not None), None)
    path = path or _download(spec, "tokenizer_config.json")
    if path is None:
        return CheckpointProfile(family=named) if named else CheckpointProfile()
    text = path.read_text(encoding="utf-8", errors="replace")
    config = _config(spec)
    return CheckpointProfile(family=named or recognise(_model_type(config), text),
                             context_tokens=context_tokens(config or {}))


def context_tokens(config: Any) -> int | None:
    """The language model's context window from a checkpoint's config (an object or its JSON as a dict)."""
    def get(holder: Any, key: str) -> Any:
        return holder.get(key) if isinstance(holder, dict) else getattr(holder, key, None)

    text_config = get(config, "text_config") or config
    tokens = get(text_config, "max_position_embeddings") or get(config, "max_position_embeddings")
    return tokens if isinstance(tokens, int) and tokens > 0 else None


def load_model_type(spec: ModelSpec) -> str | None:
    """The checkpoint's config.json `model_type`, found as `load_profile` finds the tokenizer's files; None if the
    file cannot be had or read (loading it then says what is wrong)."""
    return _model_type(_config(spec))


def family_of_tokenizer(model_type: str, tokenizer: Any) -> Family:
    """The family of a loaded checkpoint: its model type and the added tokens of its tokenizer."""
    marks = " ".join(f'"{token}"' for token in tokenizer.get_vocab() if token.startswith("<"))
    return recognise(model_type, marks)


def _config(spec: ModelSpec) -> dict | None:
    path = file_on_disk(spec, "config.json") or _download(spec, "config.json")
    try:
        config = json.loads(path.read_text(encoding="utf-8")) if path else None
    except (OSError, ValueError):  # a damaged config: loading the model says what is wrong with it
        return None
    return config if isinstance(config, dict) else None


def _model_type(config: dict | None) -> str | None:
    model_type = config.get("model_type") if config else None
    return model_type if isinstance(model_type, str) else None


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
