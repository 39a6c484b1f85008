"""vlmcli's staged LoRA / QLoRA fine-tuning (the Idefics2 recipe), built on the Trainer and PEFT.

Installed as `vlmcli.finetune`. Beside the pipeline: it reuses vlmcli's model
loading (`vlmcli.model`), page images (`vlmcli.inputs.pages`) and prompts, so a
model is trained on the same pixels and prompt format it is later asked with.
"""

import vlmcli.model.quiet  # noqa: F401 - before transformers/peft pull in bitsandbytes
