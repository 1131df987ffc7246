"""Image files as model inputs: the rules every reader shares.

Data prep, retrain batches and `predict` read image files through `pipeline.data.read_image` (which
opens regular files only); the served `digits-classifier` decodes uploaded bytes with the same
functions. So this module imports nothing from the pipeline (numpy and Pillow only): the registered
model carries a copy of this file (checked by sha256 against the installed one before it runs), and
loads outside the project. HEIC/HEIF files (phone photos) are read when pillow-heif is installed
(an optional import: without it they are not images, and everything else works).

The rules: the size is checked from the header, before anything is decoded (`max_pixels`); EXIF
orientation is applied; every mode Pillow reads is converted by its meaning — 16-bit images scaled
by their bit depth, 32-bit integers by the depth the file declares, floats kept in [0, 1] (or
scaled from a [0, 255] / [0, 65535] range; negative or non-finite values refused), palettes by
their colours, transparency composited onto the background that keeps the ink visible (white under
dark strokes, black under light ones) — then the image is converted to grey or RGB as the model
expects, resized to its input, and scaled to [0, 1]. Any failure is an ImageError of one line.
"""

from __future__ import annotations

import functools
import io
import warnings

import numpy as np

# the largest image decoded (pixels, from the header): a 4096 x 4096 scan, about 50 MB as RGB
MAX_PIXELS = 4096 * 4096
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, as Pillow's convert("L")


class ImageError(ValueError):
    """An input that is not an image this reader accepts; the message is one line."""


def decode(source, shape: tuple[int, ...], max_pixels: int = MAX_PIXELS, formats=None) -> np.ndarray:
    """Encoded image bytes (or a file path or binary file object) as float32 in [0, 1], shaped
    `shape` = (height, width, channels 1 or 3). `formats`: the Pillow formats accepted (e.g.
    ("PNG", "JPEG")); None: any."""
    return to_float(opened(source, shape, max_pixels, formats, to_pixels))


def decode_uint8(source, shape: tuple[int, ...], max_pixels: int = MAX_PIXELS, formats=None) -> np.ndarray:
    """As `decode`, as uint8 (value = float value x 255): exact for 8-bit images; images with
    transparency, 16-bit and float images are rounded to the nearest of the 256 levels."""
    return to_uint8(opened(source, shape, max_pixels, formats, to_pixels))


@functools.cache
def heif_opener() -> bool:
    """Pillow reads HEIC/HEIF once pillow-heif registers its opener (on the first image read, not at
    import); False where pillow-heif is not installed."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        return False
    register_heif_opener()
    return True


def readable(formats):
    """The formats of `formats` (e.g. a served model's PNG, JPEG, HEIF) Pillow reads here; None: any."""
    from PIL import Image

    if formats is None:
        return None
    Image.init()
    return [name for name in formats if name in Image.OPEN]


def opened(source, shape, max_pixels, formats, convert):
    """`convert(image, shape)` of the decoded image, every failure an ImageError of one line."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    heif_opener()
    formats = readable(formats)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # max_pixels is lower
            warnings.filterwarnings("ignore", module="PIL")  # e.g. corrupt EXIF: refused or fine
            with Image.open(
                io.BytesIO(source) if isinstance(source, bytes) else source, formats=formats
            ) as img:
                width, height = img.size  # from the header: nothing is decoded yet
                if width * height > max_pixels:
                    raise ImageError(f"{width}x{height} pixels exceeds the limit of {max_pixels} pixels")
                side = max(shape[:2])  # either orientation (EXIF may turn the image)
                img.draft(img.mode, (side, side))  # JPEG: decode at 1/2, 1/4, 1/8 when that is enough
                img.load()  # decode now, so truncated files fail here
                ImageOps.exif_transpose(img, in_place=True)  # no copy when it needs no turn
                return convert(img, shape)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image" + (f" ({' or '.join(formats)})" if formats else "")) from None
    except Image.DecompressionBombError as exc:  # Pillow's own limit, from the header too
        raise ImageError(str(exc).splitlines()[0]) from None
    except Exception as exc:  # Pillow raises many kinds (OSError, SyntaxError, struct.error, ...)
        # errors.first_line's rule, written out: this module imports nothing from the pipeline
        line = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ImageError(f"corrupt image ({type(exc).__name__}{': ' + line if line else ''})") from None


def to_float(pixels: np.ndarray) -> np.ndarray:
    """`to_pixels`' result as float32 in [0, 1] (uint8 divided by 255)."""
    return pixels.astype(np.float32) / 255.0 if pixels.dtype == np.uint8 else pixels


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """`to_pixels`' result as uint8 (floats rounded to the nearest 1/255)."""
    return pixels if pixels.dtype == np.uint8 else np.rint(pixels * 255.0).astype(np.uint8)


def to_pixels(img, shape: tuple[int, ...]) -> np.ndarray:
    """A decoded Pillow image resized to `shape` (h, w, c): uint8 where the image is 8-bit grey or
    colour (exact), else float32 in [0, 1] (transparency composited, high bit depths scaled)."""
    from PIL import Image

    size, channels = (shape[1], shape[0]), shape[2]
    if img.mode == "P":  # a palette: its colours, with its transparent entry as alpha
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode in ("PA", "La", "RGBa"):
        img = img.convert("LA" if img.mode == "La" else "RGBA")
    if img.mode in ("1", "L", "RGB", "RGBX", "CMYK", "YCbCr", "HSV", "LAB"):
        mode = "L" if channels == 1 else "RGB"
        img = img if img.mode == mode else img.convert(mode)
        pixels = np.asarray(img.resize(size, Image.Resampling.BILINEAR))
        return pixels[..., np.newaxis] if pixels.ndim == 2 else pixels
    if img.mode in ("LA", "RGBA"):  # Pillow resizes these with premultiplied alpha
        pixels = np.asarray(img.resize(size, Image.Resampling.BILINEAR), np.float32) / 255.0
        pixels = composite(pixels[..., :-1], pixels[..., -1:])
    elif img.mode.startswith("I") or img.mode == "F":  # 16/32-bit integers, 32-bit floats
        scaled = Image.fromarray(scale_depth(img), "F")
        pixels = np.asarray(scaled.resize(size, Image.Resampling.BILINEAR), np.float32)
    else:
        raise ImageError(f"image mode {img.mode} is not supported")
    return match_channels(np.clip(pixels, 0.0, 1.0), channels)


def composite(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Flatten an image with alpha onto the background that keeps its ink visible: white under
    dark strokes, black under light ones (judged by the opaque pixels' mean brightness)."""
    weight = float(alpha.sum())
    luma = color @ LUMA if color.shape[-1] == 3 else color[..., 0]
    ink = float((luma * alpha[..., 0]).sum() / weight) if weight else 1.0
    background = 1.0 if ink < 0.5 else 0.0
    return color * alpha + background * (1.0 - alpha)


def scale_depth(img) -> np.ndarray:
    """A high-bit-depth image's values on [0, 1] (2-D float32): 16-bit integers by 65535, other
    integers by the bit depth the file declares (else the smallest of 8/16/32 bits that holds them);
    floats in [0, 1] as they are, in [0, 255] or [0, 65535] by that range; anything else refused."""
    values = np.asarray(img).astype(np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0:
        kind = "float" if img.mode == "F" else "integer"
        raise ImageError(f"{kind} image with values from {low:g} to {high:g}; expected values >= 0")
    if img.mode.startswith("I;16"):
        return (values / 65535).astype(np.float32)
    if img.mode == "F" and high <= 1:
        return values.astype(np.float32)
    bits = getattr(img, "tag_v2", {}).get(258) if img.mode == "I" else None  # TIFF BitsPerSample
    bits = bits[0] if isinstance(bits, tuple) else bits
    depths = [bits] if isinstance(bits, int) and bits > 0 and high < 2**bits else [8, 16, 32]
    depth = next((d for d in depths if high <= 2**d - 1), None)
    if depth is None or (img.mode == "F" and depth > 16):
        raise ImageError(f"float image with values from {low:g} to {high:g}; expected [0, 1], 8 or 16-bit")
    return (values / (2**depth - 1)).astype(np.float32)


def match_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """(h, w) or (h, w, c) → (h, w, channels): colour to luminance, or grey repeated."""
    if pixels.ndim == 2:
        pixels = pixels[..., np.newaxis]
    if pixels.shape[-1] == channels:
        return pixels.astype(np.float32)
    if channels == 1:
        return (pixels @ LUMA)[..., np.newaxis].astype(np.float32)
    return np.repeat(pixels, channels, axis=-1).astype(np.float32)
