"""Atheris harness for vlmcli's input guard: any bytes -> an RGB page within the pixel budget, or InputError.

Run by hand (minutes to hours; not part of the test suite):

    .venv/bin/pip install atheris
    .venv/bin/python fuzz/fuzz_inputs.py -max_total_time=600 -rss_limit_mb=2048 fuzz/corpus/

Seed the corpus first with small valid files of every allowed format (the
harness writes them on the first run if the folder is empty), so the fuzzer
starts inside the decoders rather than at their magic bytes. A finding is any
exception other than `InputError`, a hang (`-timeout`), or an RSS spike
(`-rss_limit_mb`); save the crashing input under tests/ as a regression fixture.
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from PIL import Image

    from vlmcli.inputs import images
    from vlmcli.errors import InputError

PIXEL_BUDGET = 4096 * 4096  # far below Pillow's default: a fuzzer finds bombs fast, RAM is the limit here
SEED_MODES = {"PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"], "TIFF": ["L", "RGB", "CMYK", "I;16", "F"],
              "JPEG": ["L", "RGB", "CMYK"], "GIF": ["P"], "BMP": ["RGB"], "WEBP": ["RGBA"], "PPM": ["RGB"]}


def test_one_input(data: bytes) -> None:
    try:
        page = images.load_image_bytes(data)
    except InputError:
        return
    if page.mode != "RGB" or page.width * page.height > PIXEL_BUDGET:
        raise AssertionError(f"the guard let through {page.mode} {page.size}")


def write_seeds(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for fmt, modes in SEED_MODES.items():
        for mode in modes:
            buffer = io.BytesIO()
            Image.new(mode, (17, 9), 100).save(buffer, fmt)
            (folder / f"seed-{mode.replace(';', '_')}.{fmt.lower()}").write_bytes(buffer.getvalue())


def main() -> None:
    Image.MAX_IMAGE_PIXELS = PIXEL_BUDGET
    warnings.simplefilter("ignore")  # Pillow's "Truncated File Read" and EXIF warnings are not findings
    corpus = next((Path(arg) for arg in sys.argv[1:] if not arg.startswith("-")), None)
    if corpus is not None and not any(corpus.glob("*")):
        write_seeds(corpus)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
