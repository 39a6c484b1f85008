"""Where the language model's float32 nn.Linear layers sit, for the levers that replace them (split_decode,
half_decode): the decoder's layers and the output layer, which sits on the model itself."""

from __future__ import annotations

from typing import Any

import torch


def float32_linears(model: Any) -> list[tuple[Any, str]]:
    """(parent, name) of each plain float32 nn.Linear of the language model, the output layer (`lm_head`) last.
    Pairs, not modules, so a caller replacing them one by one lets each old layer go as it goes."""
    text_model = getattr(getattr(model, "model", model), "text_model", None)
    places = [(parent, name) for parent in (text_model.modules() if text_model else ())
              for name, child in parent.named_children() if _float32_linear(child)]
    if _float32_linear(getattr(model, "lm_head", None)):
        places.append((model, "lm_head"))
    return places


def _float32_linear(module: Any) -> bool:
    return type(module) is torch.nn.Linear and module.weight.dtype == torch.float32
