"""A page → the images the model is shown: the one place where pixels are made, for ask, ocr, finetune and eval."""

from __future__ import annotations

from dataclasses import dataclass

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

POINTS_PER_INCH = 72.0
DEFAULT_IMAGE_DPI = 96.0  # for images that do not say their resolution (a screenshot's, as browsers assume)


@dataclass(frozen=True)
class PageGeometry:
    """A page's size in pixels (an image's own; a PDF page's at the resolution it is rendered for the model)
    and in PDF points."""

    width_px: int
    height_px: int
    width_pt: float
    height_pt: float

    @property
    def dpi(self) -> float:
        return self.width_px * POINTS_PER_INCH / self.width_pt


def page_images(ref: PageRef, max_input_px: int, split: SplitSpec, pdf: PdfSpec) -> list[Image.Image]:
    """The page's bands, top to bottom (the whole page when `split.bands` is off or it fits the model's input).

    `max_input_px` is the longest edge the model's processor takes without shrinking.
    """
    page = pad_to_min_side(load_page(ref, max_input_px, split.bands, pdf))
    if not split.bands:
        return [page]
    return cut_bands(page, plan_bands(page.width, page.height, max_input_px, split.band_overlap))


def load_page(ref: PageRef, max_input_px: int, bands: bool, pdf: PdfSpec) -> Image.Image:
    """The page as an RGB image. PDFs are rendered at the DPI the model needs, never larger, and at most at
    `pdf.max_dpi`."""
    if not ref.is_pdf:
        return images.load_image(ref.source, ref.page_index)
    width_in, height_in = pdfs.page_size_in(ref.source, ref.page_number, pdf)
    dpi = pdf_render_dpi(width_in, height_in, max_input_px, bands, pdf.max_dpi)
    return pdfs.render_page(ref.source, ref.page_number, dpi, pdf)


def page_image_and_geometry(ref: PageRef, max_input_px: int, pdf: PdfSpec) -> tuple[Image.Image, PageGeometry]:
    """The whole page as the model read it (not banded), and its size in pixels and points."""
    image = load_page(ref, max_input_px, bands=False, pdf=pdf)
    if ref.is_pdf:
        width_in, height_in = pdfs.page_size_in(ref.source, ref.page_number, pdf)
    else:
        dpi = _image_dpi(ref)
        width_in, height_in = image.width / dpi, image.height / dpi
    return image, PageGeometry(image.width, image.height, width_in * POINTS_PER_INCH, height_in * POINTS_PER_INCH)


def page_image_at(ref: PageRef, pdf_dpi: float, pdf: PdfSpec) -> tuple[Image.Image, PageGeometry]:
    """The whole page for an OCR engine: a PDF page rendered at `pdf_dpi`, an image as it is; and its geometry."""
    if not ref.is_pdf:
        image = images.load_image(ref.source, ref.page_index)
        dpi = _image_dpi(ref)
        return image, PageGeometry(image.width, image.height, image.width * POINTS_PER_INCH / dpi,
                                   image.height * POINTS_PER_INCH / dpi)
    width_in, height_in = pdfs.page_size_in(ref.source, ref.page_number, pdf)
    image = pdfs.render_page(ref.source, ref.page_number, pdf_dpi, pdf)
    return image, PageGeometry(image.width, image.height, width_in * POINTS_PER_INCH, height_in * POINTS_PER_INCH)


def _image_dpi(ref: PageRef) -> float:
    """The resolution an image file states (its first axis), or DEFAULT_IMAGE_DPI."""
    with Image.open(ref.source, formats=images.ALLOWED_FORMATS) as image:
        stated = image.info.get("dpi", (0, 0))[0]
    return float(stated) if stated and float(stated) > 1 else DEFAULT_IMAGE_DPI
