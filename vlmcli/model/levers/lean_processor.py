"""Idefics3's image processor with the page's float copies made one sub-image at a time.

transformers' `Idefics3ImageProcessorPil` rescales every sub-image of a page, then
normalizes every one, then pads every one, then stacks them all: four float32 copies
of the whole page (and float64 temporaries) at once, at the moment the model already
fills memory. This subclass keeps its resize and split steps (uint8, PIL) and calls
its own `rescale` and `normalize` on each sub-image in turn, writing straight into
the batch array, so the values are the same bit for bit (tests/test_lean_processor.py)
and only one sub-image's temporaries live at a time. Its pixel mask is boolean where
the parent's is int64 (8 bytes a pixel, alive beside the model until the sub-images
are encoded); Idefics3 only tests it for nonzero. Anything outside the path it
reproduces goes to the parent unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import SizeDict
from transformers.models.idefics3.image_processing_pil_idefics3 import (
    Idefics3ImageProcessorPil,
)

PARENT_TYPE = "Idefics3ImageProcessor"


class LeanIdefics3ImageProcessor(Idefics3ImageProcessorPil):
    """The same pixels as `Idefics3ImageProcessorPil`, with one sub-image's float copies alive at a time
    and a boolean pixel mask."""

    def _preprocess(self, images: list[list[np.ndarray]], **kwargs: Any) -> BatchFeature:
        if not (kwargs["do_pad"] and kwargs["do_rescale"] and kwargs["do_normalize"]):
            return super()._preprocess(images, **kwargs)
        resized, rows, cols = self._resized_and_split(images, kwargs)
        pixel_values, pixel_mask = self._normalized_batch(resized, kwargs)
        encoding = BatchFeature(data={"pixel_values": pixel_values, "pixel_attention_mask": pixel_mask},
                                tensor_type=kwargs["return_tensors"])
        if kwargs["return_row_col_info"]:
            encoding["rows"], encoding["cols"] = rows, cols
        return encoding

    def _resized_and_split(self, images: list[list[np.ndarray]], kwargs: dict) -> tuple[list, list, list]:
        """The parent's resize and split steps, on uint8 pixels: (sub-images per sample, rows, cols)."""
        resample, edge_px = kwargs["resample"], kwargs["max_image_size"]["longest_edge"]
        if kwargs["do_resize"]:
            images = [[self.resize(image=img, size=kwargs["size"], resample=resample) for img in sample]
                      for sample in images]
        if not kwargs["do_image_splitting"]:
            square = {"height": edge_px, "width": edge_px}
            resized = [[self.resize(image=img, size=SizeDict(**square), resample=resample)
                        for img in sample] for sample in images]
            return resized, [[0] * len(s) for s in resized], [[0] * len(s) for s in resized]
        split, rows, cols = [], [], []
        for sample in images:
            frames, sample_rows, sample_cols = [], [], []
            for image in sample:
                image = self.resize_for_vision_encoder(image, edge_px, resample=resample)
                sub_images, n_rows, n_cols = self.split_images(image, max_image_size=kwargs["max_image_size"],
                                                               resample=resample)
                frames.extend(sub_images)
                sample_rows.append(n_rows)
                sample_cols.append(n_cols)
            split.append(frames)
            rows.append(sample_rows)
            cols.append(sample_cols)
        return split, rows, cols

    def _normalized_batch(self, images: list[list[np.ndarray]], kwargs: dict) -> tuple[np.ndarray, np.ndarray]:
        """Rescale, normalize and zero-pad each sub-image into one (samples, sub-images, C, H, W) array."""
        channels = next(img.shape[0] for sample in images for img in sample)
        height_px = max(img.shape[1] for sample in images for img in sample)
        width_px = max(img.shape[2] for sample in images for img in sample)
        per_sample = max(len(sample) for sample in images)
        # np.zeros maps untouched pages lazily: only the sub-images written below become resident.
        pixel_values = np.zeros((len(images), per_sample, channels, height_px, width_px), dtype=np.float32)
        pixel_mask = np.zeros((len(images), per_sample, height_px, width_px), dtype=np.bool_)
        for i, sample in enumerate(images):
            for j, image in enumerate(sample):
                image = self.rescale(image, kwargs["rescale_factor"])
                image = self.normalize(image, kwargs["image_mean"], kwargs["image_std"])
                pixel_values[i, j, :, :image.shape[1], :image.shape[2]] = image
                pixel_mask[i, j, :image.shape[1], :image.shape[2]] = True
        return pixel_values, pixel_mask

    def to_dict(self) -> dict[str, Any]:
        # Saved (a fine-tuned model's processor) as the class it stands in for, which any transformers loads.
        return {**super().to_dict(), "image_processor_type": PARENT_TYPE}


def leaner_images(processor: Any) -> Any:
    """`processor` with transformers' Idefics3 PIL image processor swapped for the lean one (others as they are)."""
    image_processor = getattr(processor, "image_processor", None)
    if type(image_processor) is Idefics3ImageProcessorPil:
        processor.image_processor = LeanIdefics3ImageProcessor(**image_processor.to_dict())
    return processor
