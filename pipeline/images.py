"""Image files as model inputs: the rules every reader shares.

Data prep, retrain batches and `predict` read image files through `pipeline.data.read_image`; the
served `digits-classifier` decodes uploaded bytes with the same functions. So this module imports
nothing from the pipeline (numpy and Pillow only): the registered model carries a copy of this file
(checked by sha256 against the installed one before it runs), and loads outside the project.

The rules: the size is checked from the header, before anything is decoded (`max_pixels`); the
image is converted to grey or RGB as the model expects, resized to its input, and scaled to [0, 1].
"""

from __future__ import annotations

import io

import numpy as np

# the largest image decoded (pixels, from the header): a 4096 x 4096 scan, about 50 MB as RGB
MAX_PIXELS = 4096 * 4096


class ImageError(ValueError):
    """An input that is not an image this reader accepts; the message is one line."""


def decode(source, shape: tuple[int, ...], max_pixels: int = MAX_PIXELS, formats=None) -> np.ndarray:
    """Encoded image bytes (or a file path) as float32 in [0, 1], shaped `shape` = (height, width,
    channels 1 or 3). `formats`: the Pillow formats accepted (e.g. ("PNG", "JPEG")); None: any."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source, formats=formats) as img:
            width, height = img.size  # from the header: nothing is decoded yet
            if width * height > max_pixels:
                raise ImageError(f"{width}x{height} pixels exceeds the limit of {max_pixels} pixels")
            img.load()  # decode now, so truncated files fail here
            img = img.convert("L" if shape[2] == 1 else "RGB")
            img = img.resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(img, dtype=np.float32) / 255.0
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image" + (f" ({' or '.join(formats)})" if formats else "")) from None
    except Image.DecompressionBombError as exc:  # Pillow's own limit, from the header too
        raise ImageError(str(exc).splitlines()[0]) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"corrupt image ({exc})") from None
    return pixels[..., np.newaxis] if pixels.ndim == 2 else pixels
