"""Load a checkpoint of any family vlmcli knows (model/families), or any other image-text-to-text checkpoint that
transformers ships, with the generic profile (torch, transformers).

Loading is strict on purpose: no remote code (`trust_remote_code=False`), no
pickle weights (`use_safetensors=True`), and `--offline` never touches the
network; `--trust-remote-code` and `--allow-pickle` lift the first two, one by
one, for checkpoints the user vouches for. Each predictable failure becomes a
`VlmcliError` naming the fix.
"""

from __future__ import annotations

import pickle
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub.utils import logging as hub_logging
from safetensors import SafetensorError
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    BitsAndBytesConfig,
    GenerationConfig,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING
from transformers.utils import GENERATION_CONFIG_NAME
from transformers.utils import logging as transformers_logging

import vlmcli.model.quiet  # noqa: F401 - before transformers pulls in bitsandbytes
from vlmcli.errors import (
    DependencyError,
    ModelError,
    RefusedError,
    ResourceError,
    first_line,
)
from vlmcli.model import adapters, weights
from vlmcli.model.families import GENERIC, Family, by_name
from vlmcli.model.image_only import load_processor
from vlmcli.model.levers import registry
from vlmcli.model.profile import context_tokens, family_of_tokenizer
from vlmcli.model.runtime import Resolved, resolve
from vlmcli.specs import ModelSpec, Quant, SplitSpec


@dataclass
class LoadedModel:
    """A model ready to generate, with the processor configured for this run."""

    model: Any
    processor: Any
    model_type: str
    device: str
    dtype: torch.dtype
    stop_token_ids: list[int]
    image_token_id: int
    max_input_px: int  # longest page edge the processor takes before shrinking it
    family: Family = GENERIC  # how the checkpoint is asked and read (model/families)
    kept_stop_ids: tuple[int, ...] = ()  # stop tokens that belong to the text (</doctag>)
    context_tokens: int | None = None  # the language model's context window, prompt and answer together
    resolved: Resolved | None = None  # device, dtype and levers as resolved for this load

    @property
    def doctags(self) -> bool:
        """A DocTags checkpoint: its special tokens are its output, </doctag> ends it."""
        return self.family.writes_doctags

    def uses(self, lever: str) -> bool:
        """Whether the load chose `lever` (levers/registry.py); those that act on each page ask here."""
        return self.resolved is not None and lever in self.resolved.lever_names


def load_model(spec: ModelSpec, split: SplitSpec, *, for_training: bool = False,
               unquantized_modules: tuple[str, ...] = (), skip_levers: frozenset[str] | None = None) -> LoadedModel:
    """Load model, processor and optional adapter as `spec` says (through `vlmcli.model.load`).

    For training, adapters (and the earlier stages they build on) are merged into
    the weights, the model is left in train mode, and `auto` dtype is float32 on CPUs.
    `unquantized_modules` stay in full precision under --quantize (modules trained fully).
    Device, dtype and levers are `resolve`'s (model/runtime.py), the settings a run's fingerprint names;
    `skip_levers` overrides `VLMCLI_SKIP_LEVERS`.
    """
    # vlmcli draws its own spinner, and its own errors say what went wrong
    # (huggingface_hub would otherwise log each retry of an unreachable hub).
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    hub_logging.set_verbosity_error()
    config = _load_config(spec)
    named = by_name(spec.family, config.model_type) if spec.family else None
    resolved = resolve(spec, for_training=for_training, skip=skip_levers, model_type=config.model_type)
    device, dtype = resolved.device, getattr(torch, resolved.dtype)
    processor = registry.apply_to_processor(resolved.levers, _load_processor(spec))
    _check_agreement(spec, config, processor)
    chain = adapters.adapter_chain(spec.adapter, spec.allow_pickle) if spec.adapter is not None else []
    # An adapter's fully trained modules replace whole layers: keep those unquantized.
    unquantized_modules = (*unquantized_modules, *adapters.fully_trained_modules(chain))
    with registry.around_weights(resolved.levers, resolved.target):
        model = _load_weights(spec, config, device, dtype, unquantized_modules)
    if chain:
        model = adapters.attach(model, chain, merge_all=for_training)
    model.train(for_training)
    if not for_training:
        registry.apply_to_model(resolved.levers, model, resolved.target)
    tokenizer = processor.tokenizer
    family = named or family_of_tokenizer(config.model_type, tokenizer)
    max_input_px = family.resolution.configure(processor, adapters.trained_resolution(spec.adapter, split))
    return LoadedModel(
        model=model, processor=processor, model_type=config.model_type, device=device, dtype=dtype,
        stop_token_ids=_stop_token_ids(model, tokenizer, family), image_token_id=_image_token_id(config, processor),
        max_input_px=max_input_px, family=family, kept_stop_ids=_token_ids(tokenizer, family.kept_stop_tokens),
        context_tokens=context_tokens(config), resolved=resolved,
    )


def quantization_config(quantize: Quant, compute_dtype: torch.dtype,
                        skip_modules: tuple[str, ...] = ()) -> BitsAndBytesConfig | None:
    """bitsandbytes settings for --quantize: 4-bit is NF4 with double quantization; lm_head always stays as is."""
    if quantize is Quant.none:
        return None
    try:
        import bitsandbytes  # noqa: F401 - only to fail early with a clear message
    except ImportError:
        raise DependencyError("--quantize needs bitsandbytes", hint="pip install bitsandbytes") from None
    # transformers matches these from the start of a module's full name, or as a suffix.
    skip = ["lm_head", *(f".*{name}" for name in skip_modules)]
    if quantize is Quant.int8:
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype, llm_int8_skip_modules=skip)


def _check_agreement(spec: ModelSpec, config: Any, processor: Any) -> None:
    """Config and processor describe the same model where both state it: the image token the prompt carries, and
    the vision tower's patch, merge and temporal patch sizes the pixels are cut by. A mismatch (processor files
    from another checkpoint) would otherwise fail deep inside generate."""
    vision, image_processor = getattr(config, "vision_config", None), processor.image_processor
    config_token = getattr(config, "image_token_id", None)
    config_token = getattr(config, "image_token_index", None) if config_token is None else config_token
    pairs = {"image token id": (config_token, getattr(processor, "image_token_id", None)),
             "patch size": (getattr(vision, "patch_size", None), _square(getattr(image_processor, "patch_size", None))),
             "merge size": (getattr(vision, "spatial_merge_size", None), getattr(image_processor, "merge_size", None)),
             "temporal patch size": (getattr(vision, "temporal_patch_size", None),
                                     getattr(image_processor, "temporal_patch_size", None))}
    for what, (in_config, in_processor) in pairs.items():
        if isinstance(in_config, int) and isinstance(in_processor, int) and in_config != in_processor:
            token = getattr(processor, "image_token", None) if what == "image token id" else None
            named = f" ({token})" if token else ""
            raise ModelError(f"{spec.model_id}: its config and processor disagree ({what}: {in_config} in "
                             f"config.json, {in_processor}{named} in the processor's files)",
                             hint="the processor or tokenizer files may come from another model: take them from "
                                  "the checkpoint's own repository")


def _square(size: Any) -> Any:
    """A patch size as one number (Pixtral states {"height": 14, "width": 14})."""
    if isinstance(size, dict) and size.get("height") == size.get("width"):
        return size.get("height")
    return size


def _hub_kwargs(spec: ModelSpec) -> dict:
    return {"revision": spec.revision, "trust_remote_code": spec.trust_remote_code, "local_files_only": spec.offline}


def _load_config(spec: ModelSpec) -> Any:
    try:
        config = AutoConfig.from_pretrained(spec.model_id, **_hub_kwargs(spec))
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise RefusedError(f"{spec.model_id}: the checkpoint needs its own Python code (trust_remote_code)",
                               hint="vlmcli only runs the model code that ships with transformers; pass "
                                    "--trust-remote-code if you have read that code and pinned --revision") from None
        raise ModelError(f"{spec.model_id}: not a supported checkpoint ({first_line(exc)})") from None
    except OSError as exc:
        raise _not_found(spec, exc) from None
    remote_vlm = spec.trust_remote_code and "AutoModelForImageTextToText" in (getattr(config, "auto_map", None) or {})
    if type(config) not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING and not remote_vlm:
        raise ModelError(f"{spec.model_id}: model type '{config.model_type}' is not an image-text-to-text model",
                         hint="vlmcli reads pages with vision-language checkpoints; `vlmcli models` lists the "
                              "families it knows")
    return config


def _load_processor(spec: ModelSpec) -> Any:
    """The checkpoint's processor; one that declares a video processor is built image-only where torchvision does
    not import (model/image_only.py)."""
    try:
        return load_processor(spec.model_id, **_hub_kwargs(spec))
    except OSError as exc:
        raise _not_found(spec, exc) from None
    except ImportError as exc:
        raise DependencyError(f"{spec.model_id}: the processor needs a missing package ({first_line(exc)})",
                              hint="install the package named above") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"{spec.model_id}: the processor cannot be built from the checkpoint's files "
                         f"({first_line(exc)})", hint="its processor and tokenizer files may be damaged or from "
                                                      "another model") from None


def _load_weights(spec: ModelSpec, config: Any, device: str, dtype: torch.dtype,
                  unquantized: tuple[str, ...]) -> Any:
    # A checkpoint saved quantized carries its own quantization_config; passing
    # one (even None) would make transformers rebuild full-size layers around it.
    prequantized = getattr(config, "quantization_config", None) is not None
    quant = None if prequantized else quantization_config(spec.quantize, dtype, unquantized)
    options = {"dtype": dtype, "device_map": {"": device}, **({"quantization_config": quant} if quant else {})}
    # Remote code and prequantized checkpoints keep transformers' own path, which knows their classes and layouts.
    plain = not prequantized and type(config) in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING
    files = weights.safetensors_files(spec) if plain else None
    try:
        if files is not None:
            return _load_by_tensor(spec, config, files, options)
        # With --allow-pickle, transformers reads .bin files through torch.load(weights_only=True).
        return AutoModelForImageTextToText.from_pretrained(
            spec.model_id, **_hub_kwargs(spec), use_safetensors=not spec.allow_pickle or None, **options)
    except OSError as exc:
        if weights.has_only_pickle_weights(spec.model_id):
            raise RefusedError(f"{spec.model_id}: weights are only in pickle format (.bin), which can run code",
                               hint="convert the checkpoint to safetensors, or pass --allow-pickle to load it "
                                    "with torch's weights-only unpickler") from None
        raise _not_found(spec, exc) from None
    except SafetensorError as exc:
        raise weights.corrupt_weights(files[0].parent if files else Path(spec.model_id), exc) from None
    except pickle.UnpicklingError as exc:  # --allow-pickle: torch's weights-only unpickler refused the file
        raise RefusedError(f"{spec.model_id}: the pickle weights hold more than tensors, so they were not loaded "
                           f"({first_line(exc)})", hint="only load pickles you trust; convert them to safetensors"
                           ) from None
    except RuntimeError as exc:
        if "out of memory" in str(exc).lower():
            raise ResourceError(f"{spec.model_id}: out of memory while loading",
                                hint="try --quantize 4bit or a smaller model") from None
        raise


def _load_by_tensor(spec: ModelSpec, config: Any, files: list[Path], options: dict) -> Any:
    """from_pretrained on weights read one tensor at a time (model/weights.py says why)."""
    model_class = MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING[type(config)]
    with ExitStack() as stack:
        upcast_to = None if "quantization_config" in options else options["dtype"]
        state = weights.lazy_state_dict(files, stack, upcast_to)
        model = model_class.from_pretrained(None, config=config, state_dict=state, **options)
    if (files[0].parent / GENERATION_CONFIG_NAME).is_file():
        model.generation_config = GenerationConfig.from_pretrained(files[0].parent)
    # from_pretrained names the model after its source; PEFT copies that into adapter_config.json.
    model.config.name_or_path = model.name_or_path = spec.model_id
    return model


def _stop_token_ids(model: Any, tokenizer: Any, family: Family) -> list[int]:
    """The generation config's and tokenizer's end tokens, and the family's own (end of utterance, </doctag>)."""
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    ids.update(_token_ids(tokenizer, family.extra_stop_tokens))
    return sorted(ids)


def _token_ids(tokenizer: Any, tokens: tuple[str, ...]) -> tuple[int, ...]:
    """The ids of those of `tokens` that are single tokens of `tokenizer`."""
    found = [tokenizer.convert_tokens_to_ids(token) for token in tokens]
    return tuple(i for i in found if isinstance(i, int) and i != tokenizer.unk_token_id)


def _image_token_id(config: Any, processor: Any) -> int:
    """The token that stands for image patches in the prompt: the config's, else the processor's (where both name
    one, `_check_agreement` has seen them agree)."""
    found = getattr(config, "image_token_id", None)
    if found is None:
        found = getattr(config, "image_token_index", None)
    processors = getattr(processor, "image_token_id", None)
    if found is None:
        found = processors
    name = config.name_or_path or config.model_type
    if found is None:
        raise ModelError(f"{name}: the checkpoint names no image token",
                         hint="its config and processor disagree, or it is not a vision-language checkpoint")
    return int(found)


def _not_found(spec: ModelSpec, exc: Exception) -> Exception:
    if Path(spec.model_id).expanduser().is_dir():  # a folder on disk: what it lacks is no download away
        return ModelError(f"{spec.model_id}: not a loadable checkpoint folder ({first_line(exc)})",
                          hint="it needs config.json, the processor's files and .safetensors weights")
    if spec.offline:
        return DependencyError(f"{spec.model_id}: model is not in the local cache and --offline is set",
                               hint="run once without --offline to download it, or pass a local directory")
    if _looks_like_path(spec.model_id):
        return ModelError(f"{spec.model_id}: not a checkpoint directory ({first_line(exc)})")
    return ModelError(f"{spec.model_id}: cannot load the model ({first_line(exc)})",
                      hint="check the model id and --revision, your network, or pass a local directory")


def _looks_like_path(model_id: str) -> bool:
    # A hub id is "name" or "org/name"; anything else is meant as a folder.
    return model_id.startswith((".", "/", "~")) or model_id.count("/") > 1 or Path(model_id).exists()
