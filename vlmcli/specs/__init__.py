"""Frozen specs and the options that make them (stdlib only): kinds.py holds the choices of the options that take
one of a few values, limits.py what numeric ones accept, run.py the specs of a run (what to load, how a page becomes
model input, how to decode) with their defaults and token budgets, options.py the run options, defined once.
Everything is importable from `vlmcli.specs`."""

from vlmcli.specs.kinds import (
    AnswerFormat,
    DecodeDType,
    Device,
    DType,
    Engine,
    FirstPass,
    KVCache,
    OutputFormat,
    PdfRenderer,
    Quant,
)
from vlmcli.specs.limits import (
    BATCH_SIZE_RANGE,
    LONGEST_EDGE_RANGE,
    MAX_NEW_TOKENS_RANGE,
    PAGE_RANGE,
    PAGE_TIMEOUT_RANGE,
    RAY_ACTOR_CPUS_RANGE,
    RAY_ACTOR_GPUS_RANGE,
    RAY_ACTORS_RANGE,
    SHARD_COUNT_RANGE,
    SHARE_RANGE,
    TOP_K_RANGE,
    Range,
)
from vlmcli.specs.options import Option, RunOptions, option_of, run_option_fields
from vlmcli.specs.run import (
    ANSWER_MAX_NEW_TOKENS,
    API_KEY_ENV_VAR,
    DEFAULT_MODEL,
    DEFAULT_SERVER_CONCURRENCY,
    DEFAULT_TOP_K,
    DOCTAGS_MAX_NEW_TOKENS,
    DOCTAGS_REPETITION_MIN_TOKENS,
    DOCTAGS_TRANSCRIPTION,
    FIRST_PASS_DPI,
    LOOP_RETRY_PENALTY,
    MAX_PDF_DPI,
    MODEL_ALIASES,
    MODEL_ENV_VAR,
    OCR_MAX_NEW_TOKENS,
    TRAINING_EVAL_MAX_NEW_TOKENS,
    EngineSpec,
    FirstPassSpec,
    GenerationSpec,
    ModelSpec,
    PageTranscription,
    PdfSpec,
    RunSpec,
    SearchSpec,
    SplitSpec,
    pdf_max_dpi,
)

__all__ = [
    "ANSWER_MAX_NEW_TOKENS", "API_KEY_ENV_VAR", "AnswerFormat", "BATCH_SIZE_RANGE", "DEFAULT_MODEL",
    "DEFAULT_SERVER_CONCURRENCY", "DEFAULT_TOP_K", "DOCTAGS_MAX_NEW_TOKENS", "DOCTAGS_TRANSCRIPTION",
    "DOCTAGS_REPETITION_MIN_TOKENS", "DType", "DecodeDType", "Device", "Engine", "EngineSpec", "FIRST_PASS_DPI",
    "FirstPass", "FirstPassSpec", "GenerationSpec", "KVCache", "LONGEST_EDGE_RANGE", "LOOP_RETRY_PENALTY",
    "MAX_NEW_TOKENS_RANGE", "MAX_PDF_DPI", "MODEL_ALIASES", "MODEL_ENV_VAR", "ModelSpec", "OCR_MAX_NEW_TOKENS",
    "Option", "OutputFormat", "PAGE_RANGE", "PAGE_TIMEOUT_RANGE", "PageTranscription", "PdfRenderer", "PdfSpec",
    "Quant",
    "RAY_ACTORS_RANGE", "RAY_ACTOR_CPUS_RANGE", "RAY_ACTOR_GPUS_RANGE", "Range", "RunOptions", "RunSpec",
    "SHARD_COUNT_RANGE", "SHARE_RANGE", "SearchSpec", "SplitSpec", "TOP_K_RANGE", "TRAINING_EVAL_MAX_NEW_TOKENS",
    "option_of", "pdf_max_dpi", "run_option_fields",
]
