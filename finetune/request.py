"""A fine-tuning run as one typed request, built from the options of `vlmcli finetune` (stdlib only).

`build_request` resolves everything before a model loads: the stage (preset, then the --config file, then the
flags: finetune/stages.py), the base model (the flags over the --from run's), the data mixture with the replay of
the --from run (finetune/mixture.py) and the evaluation sets. `finetune.train.run` trains it; `--show-config`
prints it (finetune/shown.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from vlmcli.finetune import mixture, stages
from vlmcli.finetune.mixture import Source
from vlmcli.finetune.options import BadExamplePolicy, FinetuneOptions
from vlmcli.finetune.runinfo import load_run_info, model_spec_from_run
from vlmcli.finetune.stages import Stage

from vlmcli.errors import UsageError
from vlmcli.specs import TRAINING_EVAL_MAX_NEW_TOKENS, ModelSpec, PdfSpec, pdf_max_dpi


@dataclass(frozen=True)
class FinetuneRequest:
    stage: Stage
    model: ModelSpec  # model.adapter = the earlier stage this one builds on (--from), or None
    data: tuple[Source, ...]  # the mixture, replayed sources included (finetune/mixture.py)
    output: Path | None  # None: nothing to train into (--show-config only)
    eval_data: tuple[Source, ...] = ()  # each set is evaluated and reported on its own
    resume: bool = False
    skip_bad_examples: bool = False
    pdf: PdfSpec = PdfSpec()
    eval_max_new_tokens: int = TRAINING_EVAL_MAX_NEW_TOKENS

    def check_runnable(self) -> None:
        """A request to train needs its own data and an output folder (--show-config needs neither)."""
        if not any(source.replay_of is None for source in self.data) or self.output is None:
            raise UsageError("finetune needs --data and --output", hint="or --show-config to see the settings")

    def for_family(self) -> FinetuneRequest:
        """The request with the family's LoRA targets and connector where the stage names none: known from the
        checkpoint's config and tokenizer files, before its weights load."""
        from vlmcli.model.profile import load_profile

        return dataclasses.replace(self, stage=self.stage.for_family(load_profile(self.model).family))


def build_request(options: FinetuneOptions) -> FinetuneRequest:
    """The run the options describe; nothing is loaded and no data file is opened."""
    file_settings, file_data, file_eval = _config_file(options.config, options.stage)
    stage = stages.resolve(options.stage, file_settings, options.stage_overrides())
    earlier = (options.from_run, load_run_info(options.from_run)) if options.from_run else None
    parent = model_spec_from_run(earlier[1], options.from_run) if earlier else ModelSpec()
    spec = ModelSpec.from_options(
        base=parent, model=options.model, revision=options.revision, quantize=options.quantize,
        dtype=options.dtype, device=options.device, adapter=parent.adapter, offline=options.offline,
        trust_remote_code=options.trust_remote_code, allow_pickle=options.allow_pickle, family=options.family)
    own = [mixture.parse_source(text) for text in options.data] if options.data else file_data
    eval_sets = [mixture.parse_source(text, "--eval-data") for text in options.eval_data] if options.eval_data \
        else file_eval
    return FinetuneRequest(
        stage=stage, model=spec, data=mixture.training_sources(own, stage.replay, earlier), output=options.output,
        eval_data=tuple(eval_sets), resume=options.resume,
        skip_bad_examples=options.on_bad_example is BadExamplePolicy.skip,
        pdf=PdfSpec(password=options.password, max_dpi=pdf_max_dpi(stage.longest_edge_px)),
        eval_max_new_tokens=options.eval_max_new_tokens or TRAINING_EVAL_MAX_NEW_TOKENS)


def _config_file(config: Path | None, number: int) -> tuple[dict, list[Source], list[Source]]:
    """The --config file's stage settings, `[[data]]` sources and `[[eval_data]]` sets (none without a file)."""
    settings = stages.load_config(config, number) if config else {}
    return mixture.sources_in_config(settings, config)
