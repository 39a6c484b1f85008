"""vlmcli's staged LoRA / QLoRA fine-tuning (the Idefics2 recipe), built on the Trainer and PEFT.

Reuses vlmcli's model loading, page loading and prompts, so a model is trained
on the same pixels and prompt format it is later asked with.
"""

import vlmcli.quiet  # noqa: E402,F401 - before transformers/peft pull in bitsandbytes
