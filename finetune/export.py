"""`vlmcli export`: merge an adapter (and the stages under it) into a full checkpoint, then prove it loads and answers."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

from PIL import Image
from vlmcli.finetune.runinfo import load_run_info, model_spec_from_run

from vlmcli import model as model_loader
from vlmcli.errors import OutputError, UsageError
from vlmcli.files import check_writable_folder
from vlmcli.specs import DType, GenerationSpec, ModelSpec, Quant, SplitSpec


def export(adapter: Path, output: Path, base: ModelSpec | None = None, dtype: DType = DType.auto) -> dict:
    """Write OUTPUT as a standalone checkpoint (weights, processor, tokenizer, chat template); return a smoke-test report."""
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        held = "is a file" if not output.is_dir() else "exists and is not empty"
        raise OutputError(f"{output}: {held}", hint="choose a new --output folder")
    check_writable_folder(output.parent, "--output's parent")
    spec = base or model_spec_from_run(load_run_info(adapter), adapter)
    # Merge into full-precision weights even after QLoRA: merged 4/8-bit weights would be re-rounded.
    spec = dataclasses.replace(spec, quantize=Quant.none, dtype=dtype, adapter=adapter)
    loaded = model_loader.load(spec, SplitSpec())
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        loaded.model.save_pretrained(staging)
        loaded.processor.save_pretrained(staging)
        report = smoke_test(staging)
        if output.exists():
            output.rmdir()
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"output": str(output), "base": spec.model_id, **report}


def smoke_test(folder: Path) -> dict:
    """Load the exported folder as any user would, and answer one question about a blank page."""
    from vlmcli.model.generate import generate

    try:
        loaded = model_loader.load(ModelSpec(model_id=str(folder), offline=True), SplitSpec())
    except Exception as exc:
        raise UsageError(f"the exported checkpoint does not load ({exc}); nothing was written") from None
    page = Image.new("RGB", (256, 256), "white")
    answer = generate(loaded, loaded.family.messages("What is written here?", 1), [page],
                      GenerationSpec(max_new_tokens=4))
    return {"smoke_test_tokens": answer.new_tokens, "smoke_test_image_tokens": answer.image_tokens}
