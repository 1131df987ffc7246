"""Generated folders of photographs for `python -m benchmarks photos`: 10 classes, one photograph each.

Each class is one real photograph shipped offline (scikit-learn's china and flower, matplotlib's
grace_hopper, scikit-image's astronaut, coffee, chelsea, rocket, brick, grass and gravel); each
image is a random crop of it (a quarter to all of its shorter side, aspect 3:4 to 4:3), turned
grey one time in three and otherwise jittered in brightness, contrast and saturation, saved as a
JPEG of 64 to 300 px a side. So no image is repeated, and a class is not told by its mean colour
alone: the network must read texture. `grey` folders hold the same images, all grey. `other`
folders are made the same way from ten other photographs (scikit-image's camera, moon, coins,
text, page, clock, hubble_deep_field, immunohistochemistry, retina and stereo_motorcycle's left
view): what the `backbone` config's network learns from before it meets the ten classes above.

Image i depends only on (seed, i): a folder is the same wherever it is written. It is written once
under the data folder, keyed by kind, count and seed, and reused (benchmarks/folders.py's `folder`:
a pool of workers, a staging folder renamed into place when complete).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks import folders

_SOURCES: list = []  # the photographs, loaded once per process
_OTHERS: list = []  # the other photographs, likewise


def sources() -> list[tuple[str, np.ndarray]]:
    """(class name, RGB uint8 photograph) of each class."""
    if not _SOURCES:
        import matplotlib
        import skimage.data
        from PIL import Image
        from sklearn.datasets import load_sample_images

        china, flower = load_sample_images().images
        hopper = np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
        found = [("china", china), ("flower", flower), ("hopper", hopper)]
        for name in ("astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel"):
            image = getattr(skimage.data, name)()
            found.append((name, np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]))
        _SOURCES.extend(found)
    return _SOURCES


def others() -> list[tuple[str, np.ndarray]]:
    """(class name, RGB uint8 photograph) of each class of an `other` folder."""
    if not _OTHERS:
        import skimage.data

        found = [("motorcycle", skimage.data.stereo_motorcycle()[0])]
        for name in ("camera", "moon", "coins", "text", "page", "clock", "hubble_deep_field",
                     "immunohistochemistry", "retina"):  # fmt: skip
            image = getattr(skimage.data, name)()
            found.append((name, np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]))
        _OTHERS.extend(found)
    return _OTHERS


def photographs(kind: str) -> list[tuple[str, np.ndarray]]:
    return others() if kind == "other" else sources()


def image(i: int, seed: int, kind: str):
    """(class name, a PIL image): image i of a folder of `kind`."""
    from PIL import Image, ImageEnhance

    name, photo = photographs(kind)[i % len(photographs(kind))]
    rng = np.random.default_rng([seed, i])
    height, width = photo.shape[:2]
    side = rng.uniform(0.25, 1.0) * min(height, width)
    aspect = rng.uniform(0.75, 4 / 3)
    h, w = min(height, int(side * aspect)), min(width, int(side / aspect))
    top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
    crop = Image.fromarray(photo[top : top + h, left : left + w])
    out_side = int(rng.integers(64, 301))
    crop = crop.resize((out_side, max(64, min(300, int(out_side * h / w)))), Image.BILINEAR)
    if kind == "grey" or rng.random() < 1 / 3:
        return name, crop.convert("L")
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        crop = enhance(crop).enhance(rng.uniform(0.6, 1.4))
    return name, crop


def write_chunk(kind: str, folder: Path, seed: int, start: int, stop: int) -> int:
    for i in range(start, stop):
        name, picture = image(i, seed, kind)
        quality = int(np.random.default_rng([seed, i, 1]).integers(75, 96))
        (folder / name).mkdir(exist_ok=True)
        picture.save(folder / name / f"{i:06d}.jpg", quality=quality)
    return stop - start


def folder(root: Path, kind: str, count: int, seed: int = 0) -> Path:
    """`root`/<kind>-<count>-seed<seed>: written now (folders.folder) unless already complete."""
    photographs(kind)  # loaded once, before the workers fork
    return folders.folder(root, kind, count, seed, writer=write_chunk)
