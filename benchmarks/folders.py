"""Generated image folders for the scale benchmark, one sub-folder per class (the digit).

photos: scikit-learn's 8x8 digits drawn on a random colour background with noise, 250-500 px a
        side (as real photo folders vary, so prep resizes them to 224x224), saved as JPEG;
grey:   the digits at 28x28 grey with noise (MNIST's size), saved as PNG.

Image i depends only on (seed, i), so a folder is the same wherever and whenever it is written.
A folder is written once into the data folder, keyed by kind, count and seed, and reused by later
runs; it is written by a process pool, each worker holding one image at a time, into a staging
folder renamed into place when complete.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np

CHUNK = 64  # images per task of the pool
_DIGITS: list = []  # the digits, loaded once per worker


def digits():
    if not _DIGITS:
        from sklearn.datasets import load_digits

        loaded = load_digits()
        _DIGITS.append(((loaded.images * 255 / 16).astype(np.uint8), loaded.target))
    return _DIGITS[0]


def photo(i: int, seed: int):
    """(label, a PIL RGB image of 250-500 px a side): a digit in the background's complement colour."""
    from PIL import Image

    pixels, target = digits()
    k = i % len(target)
    rng = np.random.default_rng([seed, i])
    width, height = (int(v) for v in rng.integers(250, 501, 2))
    background = rng.integers(0, 256, 3)
    noise = rng.integers(0, 40, (height, width, 3))
    canvas = np.clip(background + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(canvas)
    mask = Image.fromarray(pixels[k]).resize((int(width * 0.6), int(height * 0.6)), Image.BILINEAR)
    ink = Image.new("RGB", mask.size, tuple(int(255 - c) for c in background))
    image.paste(ink, (int(width * 0.2), int(height * 0.2)), mask)
    return int(target[k]), image


def grey(i: int, seed: int):
    """(label, a PIL 28x28 grey image): a digit at a random offset, with noise."""
    from PIL import Image

    pixels, target = digits()
    k = i % len(target)
    rng = np.random.default_rng([seed, i])
    digit = np.asarray(Image.fromarray(pixels[k]).resize((20, 20), Image.BILINEAR), np.int16)
    canvas = rng.integers(0, 30, (28, 28)).astype(np.int16)
    top, left = (int(v) for v in rng.integers(0, 9, 2))
    canvas[top : top + 20, left : left + 20] += digit
    return int(target[k]), Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))


KINDS = {"photos": (photo, "jpg"), "grey": (grey, "png")}


def write_chunk(kind: str, folder: Path, seed: int, start: int, stop: int) -> int:
    draw, suffix = KINDS[kind]
    for i in range(start, stop):
        label, image = draw(i, seed)
        (folder / str(label)).mkdir(exist_ok=True)
        image.save(folder / str(label) / f"{i:06d}.{suffix}", **({"quality": 90} if suffix == "jpg" else {}))
    return stop - start


def folder(root: Path, kind: str, count: int, seed: int = 0, writer=None) -> Path:
    """`root`/<kind>-<count>-seed<seed>: written now unless an earlier run left it complete.
    `writer(kind, folder, seed, start, stop)` writes images start..stop-1 and returns how many:
    this module's photos and grey ones by default (photo_folders passes its own)."""
    target = Path(root) / f"{kind}-{count}-seed{seed}"
    if (target / ".complete").exists():
        return target
    if writer is None:
        digits()  # loaded once, before the workers fork
        writer = write_chunk
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    tasks = [(kind, staging, seed, start, min(start + CHUNK, count)) for start in range(0, count, CHUNK)]
    if len(tasks) == 1:
        writer(*tasks[0])
    else:  # fork: the workers import nothing (a spawned worker would re-run `python -m benchmarks`)
        with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as pool:
            assert sum(pool.starmap(writer, tasks)) == count
    (staging / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


def files(folder: Path) -> list[Path]:
    """The folder's images (not its marker), in a stable order."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith("."))
