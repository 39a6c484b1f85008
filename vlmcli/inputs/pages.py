"""A page → the images the model is shown: the one place where pixels are made, for ask, ocr, finetune and eval."""

from __future__ import annotations

from PIL import Image

from vlmcli.inputs import images, pdfs
from vlmcli.inputs.documents import PageRef
from vlmcli.inputs.geometry import (
    cut_bands,
    pad_to_min_side,
    pdf_render_dpi,
    plan_bands,
)
from vlmcli.specs import PdfSpec, SplitSpec


def page_images(ref: PageRef, max_input_px: int, split: SplitSpec, pdf: PdfSpec) -> list[Image.Image]:
    """The page's bands, top to bottom (the whole page when `split.bands` is off or it fits the model's input).

    `max_input_px` is the longest edge the model's processor takes without shrinking.
    """
    page = pad_to_min_side(load_page(ref, max_input_px, split.bands, pdf))
    if not split.bands:
        return [page]
    return cut_bands(page, plan_bands(page.width, page.height, max_input_px, split.band_overlap))


def load_page(ref: PageRef, max_input_px: int, bands: bool, pdf: PdfSpec) -> Image.Image:
    """The page as an RGB image. PDFs are rendered at the DPI the model needs, never larger."""
    if not ref.is_pdf:
        return images.load_image(ref.source, ref.page_index)
    width_in, height_in = pdfs.page_size_in(ref.source, ref.page_number, pdf)
    dpi = pdf_render_dpi(width_in, height_in, max_input_px, bands)
    return pdfs.render_page(ref.source, ref.page_number, dpi, pdf)
