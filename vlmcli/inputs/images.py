"""Open images safely and normalize every mode to 8-bit RGB (Pillow only).

Policy: formats are allow-listed (magic bytes decide, not the suffix); EXIF
orientation is applied; transparency is composited onto white; 16-bit and
float images are scaled, not clamped; CMYK goes through its ICC profile when
it has one; images over Pillow's pixel limit are refused before decoding.
Multi-frame TIFFs are documents (one page per frame); GIF/WebP animations
contribute their first frame only.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from vlmcli.errors import InputError

ALLOWED_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP", "BMP", "GIF", "PPM")
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif", ".ppm", ".pnm", ".mpo"}
)
MAX_FRAMES = 1000  # a "many frames" TIFF is a denial-of-service vector, not a document
_WHITE = (255, 255, 255, 255)


def count_frames(path: Path) -> int:
    """Number of pages a (possibly multi-frame) image contributes."""
    with _open(path, str(path)) as image:
        if image.format != "TIFF":
            return 1
        frames = getattr(image, "n_frames", 1)
    if frames > MAX_FRAMES:
        raise InputError(f"{path}: {frames} frames is over the limit of {MAX_FRAMES}")
    return frames


def load_image(path: Path, frame_index: int = 0) -> Image.Image:
    """Decode one frame of an image file into an upright 8-bit RGB image."""
    return _decode(path, str(path), frame_index)


def load_image_bytes(data: bytes, name: str = "<bytes>") -> Image.Image:
    """Same as `load_image`, for bytes in memory."""
    return _decode(io.BytesIO(data), name, 0)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB the way a reader would see the page."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        return _scale_to_8bit(image).convert("RGB")
    if mode == "CMYK":
        return _cmyk_to_rgb(image)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba).convert("RGB")
    return image.convert("RGB")


def _decode(source: Path | BinaryIO, label: str, frame_index: int) -> Image.Image:
    with _open(source, label) as image:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image.seek(frame_index)
                _check_pixels(image)  # Pillow checks the first frame only; a later TIFF frame can be a bomb
                image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _bomb_error(label, exc) from None
        except (OSError, SyntaxError, EOFError, ValueError) as exc:
            raise InputError(f"{label}: corrupt or truncated image ({exc})",
                             hint="re-export or re-scan the file") from None
        return to_rgb(_upright(image))


def _open(source: Path | BinaryIO, label: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(source, formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb_error(label, exc) from None
    except FileNotFoundError:
        raise InputError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{label}: is a directory") from None
    except PermissionError:
        raise InputError(f"{label}: permission denied", hint="check the file's permissions") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{label}: not a supported image ({type(exc).__name__})",
                         hint=f"supported: {', '.join(ALLOWED_FORMATS)} and PDF") from None


def _check_pixels(image: Image.Image) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and image.width * image.height > limit:
        raise Image.DecompressionBombError(f"frame of {image.width}x{image.height} px exceeds limit of {limit} pixels")


def _bomb_error(label: str, exc: Exception) -> InputError:
    return InputError(f"{label}: image is larger than {Image.MAX_IMAGE_PIXELS:,} pixels ({exc})",
                      hint="downscale the image first; very large images are refused as possible decompression bombs")


def _upright(image: Image.Image) -> Image.Image:
    # Malformed EXIF must not cost the page: Pillow has raised ZeroDivisionError,
    # SyntaxError and IndexError here; keep the pixels as stored instead.
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - any EXIF parser failure means "no usable orientation"
        return image.copy()


def _scale_to_8bit(image: Image.Image) -> Image.Image:
    """16-bit/32-bit/float greys: scale the value range to 0..255 (convert() would clamp)."""
    grey = image.convert("F") if image.mode != "F" else image
    low, high = grey.getextrema()
    if image.mode.startswith("I;16") or (image.mode == "I" and 255 < high <= 65535 and low >= 0):
        low, high = 0.0, 65535.0
    elif image.mode != "F" and 0 <= low and high <= 255:
        low, high = 0.0, 255.0
    span = (high - low) or 1.0
    return grey.point(lambda value: (value - low) * 255.0 / span).convert("L")


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    icc = image.info.get("icc_profile")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError):
            pass  # a broken profile is no worse than none: fall back to the naive transform
    return image.convert("RGB")
