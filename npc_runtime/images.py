"""Screenshots: decode what a client sent (PNG, JPEG or raw RGB) and preprocess it for the vision encoder.

Training (``export/``) calls :func:`preprocess` too, so the model sees pixels exactly as it will at run time.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image

from .errors import ImageError
from .protocol import ImageInput, Limits

__all__ = ["decode_image", "preprocess", "image_key"]

_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG"}


def image_key(image: ImageInput) -> str:
    """Content hash of an encoded image, the key of the screenshot feature cache."""
    h = hashlib.blake2b(digest_size=16)
    h.update(image.format.encode())
    h.update(f"{image.width}x{image.height}".encode())
    h.update(image.data)
    return h.hexdigest()


def decode_image(image: ImageInput, limits: Limits | None = None) -> np.ndarray:
    """The image as ``uint8 (H, W, 3)`` RGB; :class:`ImageError` when the bytes are not what they claim."""
    limits = limits or Limits()
    if image.format == "rgb8":
        if image.width is None or image.height is None:
            raise ImageError("rgb8 images need width and height")
        expected = image.width * image.height * 3
        if len(image.data) != expected:
            raise ImageError(f"rgb8 data has {len(image.data)} bytes, expected {expected}")
        return np.frombuffer(image.data, dtype=np.uint8).reshape(image.height, image.width, 3).copy()
    expected_format = _PIL_FORMATS.get(image.format)
    if expected_format is None:
        raise ImageError(f"unsupported image format {image.format!r}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            pil = Image.open(io.BytesIO(image.data))
            if pil.format != expected_format:
                raise ImageError(f"image data is {pil.format or 'not an image'}, but format says {image.format}")
            width, height = pil.size
            if width > limits.max_image_width or height > limits.max_image_height:
                raise ImageError(
                    f"image is {width}x{height}; the limit is {limits.max_image_width}x{limits.max_image_height}"
                )
            if image.width is not None and image.height is not None and (width, height) != (
                image.width,
                image.height,
            ):
                raise ImageError(f"image is {width}x{height}, but the message says {image.width}x{image.height}")
            rgb = pil.convert("RGB")
            return np.asarray(rgb, dtype=np.uint8).copy()
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"cannot decode {image.format} image: {exc}") from exc


def preprocess(rgb: np.ndarray, size: int, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``uint8 (H, W, 3)`` to the vision encoder's ``float32 (3, size, size)``: bilinear resize, scale, normalise."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if rgb.shape[0] != size or rgb.shape[1] != size:
        rgb = np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR))
    x = rgb.astype(np.float32) / 255.0  # (S, S, 3)
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))  # (S, S, 3) -> (3, S, S)
