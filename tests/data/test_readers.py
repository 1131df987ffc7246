"""The shared readers as an uploader meets them: every image mode Pillow reads, hostile files, and
CSV files read as a person reads them (or the line named)."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pipeline.data import readers
from pipeline.errors import UserError
from tests.helpers import REPO, png_header_only, smooth_photo, write_heic

GRAY = (8, 8, 1)


def test_a_16_bit_png_is_scaled_by_its_bit_depth(tmp_path):
    values = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000  # 0 .. 63000 of 65535
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    pixels = readers.read_image(tmp_path / "deep.png", GRAY)
    assert np.allclose(pixels[..., 0], values / 65535, atol=1e-4)  # not clipped to white


def test_float_tiffs_keep_their_range_or_are_refused(tmp_path):
    ramp = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(ramp).save(tmp_path / "unit.tif")
    assert np.allclose(readers.read_image(tmp_path / "unit.tif", GRAY)[..., 0], ramp, atol=1e-6)
    Image.fromarray(ramp * 255).save(tmp_path / "bytes.tif")  # 8-bit values stored as floats
    assert np.allclose(readers.read_image(tmp_path / "bytes.tif", GRAY)[..., 0], ramp, atol=1e-5)
    Image.fromarray(ramp - 0.5).save(tmp_path / "signed.tif")
    with pytest.raises(UserError, match=r"signed.tif: .*float image with values from -0.5"):
        readers.read_image(tmp_path / "signed.tif", GRAY)


def test_a_32_bit_integer_tiff_is_scaled(tmp_path):
    values = (np.arange(64).reshape(8, 8) * 1000).astype(np.int32)
    Image.fromarray(values).save(tmp_path / "int.tif")
    assert Image.open(tmp_path / "int.tif").mode == "I"
    pixels = readers.read_image(tmp_path / "int.tif", GRAY)[..., 0]
    assert 0 < pixels.max() <= 1 and np.allclose(pixels / pixels.max(), values / values.max(), atol=1e-4)


def test_dark_ink_on_a_transparent_background_stays_visible(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)  # transparent black everywhere ...
    rgba[2:6, 3:5] = [0, 0, 0, 255]  # ... and an opaque black stroke
    Image.fromarray(rgba).save(tmp_path / "ink.png")
    pixels = readers.read_image(tmp_path / "ink.png", GRAY)[..., 0]
    assert pixels[3, 3] == 0.0 and pixels[0, 0] == 1.0  # black ink on white, not black on black
    la = Image.fromarray(rgba).convert("LA")
    la.save(tmp_path / "ink-la.png")
    assert np.array_equal(readers.read_image(tmp_path / "ink-la.png", GRAY), pixels[..., None])
    # light ink on a transparent background goes onto black
    rgba[2:6, 3:5] = [255, 255, 255, 255]
    Image.fromarray(rgba).save(tmp_path / "light.png")
    light = readers.read_image(tmp_path / "light.png", (8, 8, 3))
    assert light[3, 3].tolist() == [1.0, 1.0, 1.0] and light[0, 0].tolist() == [0.0, 0.0, 0.0]


def test_palette_images_with_and_without_transparency(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:, 4:] = [255, 0, 0]
    palette = Image.fromarray(rgb).convert("P")
    palette.save(tmp_path / "p.png")
    direct = readers.read_image(tmp_path / "p.png", (8, 8, 3))
    assert direct[0, 7].tolist() == [1.0, 0.0, 0.0] and direct[0, 0].tolist() == [0.0, 0.0, 0.0]
    palette.save(tmp_path / "pt.png", transparency=0)  # black (index 0) is transparent
    pixels = readers.read_image(tmp_path / "pt.png", GRAY)[..., 0]
    assert pixels[0, 0] == 1.0 and pixels[0, 7] == pytest.approx(0.299, abs=0.01)  # red ink on white


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((2, 4), np.uint8)
    pixels[0, 0] = 255  # top-left as stored
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image.save(tmp_path / "rotated.png", exif=exif)
    shown = readers.read_image(tmp_path / "rotated.png", (4, 2, 1))[..., 0]
    assert shown[0, 1] == 1.0 and shown.sum() == 1.0  # stored top-left is displayed top-right


def test_heic_photos_are_read(tmp_path):
    pixels = smooth_photo(32, 48)
    path = write_heic(tmp_path / "IMG_0001.HEIC", pixels)
    expected = np.asarray(Image.fromarray(pixels).resize((24, 16), Image.Resampling.BILINEAR)) / 255
    assert np.abs(readers.read_image(path, (16, 24, 3)) - expected).max() < 0.03  # lossy, as a JPEG
    assert readers.read_image(path, (16, 24, 1)).shape == (16, 24, 1)


# pipeline/images.py as a served model loads it (by path) where pillow-heif is not installed
WITHOUT_HEIF = """
import importlib.util, sys
sys.modules["pillow_heif"] = None  # not importable
spec = importlib.util.spec_from_file_location("rules", sys.argv[1])
rules = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rules)
formats = ["PNG", "JPEG", "HEIF"]  # a served model's list
print(rules.decode(open(sys.argv[2], "rb").read(), (4, 4, 3), formats=formats).shape)
try:
    rules.decode(open(sys.argv[3], "rb").read(), (4, 4, 3), formats=formats)
except rules.ImageError as exc:
    print(exc)
"""


def test_without_pillow_heif_heic_is_not_an_image_and_the_rest_reads(tmp_path):
    Image.fromarray(smooth_photo(8, 8)).save(tmp_path / "photo.png")
    write_heic(tmp_path / "photo.heic", smooth_photo(8, 8))
    files = [REPO / "pipeline" / "images.py", tmp_path / "photo.png", tmp_path / "photo.heic"]
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_HEIF, *map(str, files)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["(4, 4, 3)", "not an image (PNG or JPEG)"]


def test_image_size_is_checked_from_the_header_before_decoding(tmp_path):
    bomb = png_header_only(tmp_path / "bomb.png", 100_000, 100_000)
    assert bomb.stat().st_size < 200
    with pytest.raises(UserError) as error:
        readers.read_image(bomb, GRAY)
    assert "bomb.png" in str(error.value) and "\n" not in str(error.value)
    big = png_header_only(tmp_path / "big.png", 6000, 5000)  # 30 Mpx: under Pillow's own limit
    with pytest.raises(UserError, match=r"big.png: 6000x5000 pixels exceeds the limit of 16777216 pixels"):
        readers.read_image(big, GRAY)
    Image.fromarray(np.zeros((200, 200), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(UserError, match=r"200x200 pixels exceeds the limit of 10000 pixels"):
        readers.read_image(tmp_path / "small.png", GRAY, max_pixels=10_000)
    assert readers.read_image(tmp_path / "small.png", GRAY, max_pixels=40_000).shape == GRAY


def test_any_pillow_failure_is_one_line(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(good)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:40])
    (tmp_path / "junk.tif").write_bytes(b"II*\x00" + b"\xff" * 60)
    for name in ("cut.png", "junk.tif"):
        with pytest.raises(UserError) as error:
            readers.read_image(tmp_path / name, GRAY)
        assert str(error.value).startswith(str(tmp_path / name)) and "\n" not in str(error.value)


def test_special_files_are_refused_without_opening_them(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "real.png").write_bytes(b"")
    (tmp_path / "link.png").symlink_to(tmp_path / "real.png")

    def hung(signum, frame):
        raise TimeoutError("blocked on a special file")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)  # a FIFO opened for reading would block forever
    try:
        with pytest.raises(UserError, match=r"pipe.png: a named pipe"):
            readers.read_image(tmp_path / "pipe.png", GRAY)
        with pytest.raises(UserError, match=r"link.png: a symbolic link"):
            readers.read_image(tmp_path / "link.png", GRAY)
        with pytest.raises(UserError, match=r"pipe.png: a named pipe"):
            readers.regular_files(tmp_path)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_junk_from_other_systems_is_skipped(tmp_path):
    names = ("a.png", "Thumbs.db", "desktop.ini", ".DS_Store", ".hidden.png", "__MACOSX/a.png", "x/b.png")
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in readers.regular_files(tmp_path)]
    assert found == ["a.png", "x/b.png"]
    assert [p.name for p in readers.visible(tmp_path)] == ["a.png", "x"]


def test_uploader_chosen_names_are_escaped():
    assert readers.shown("a\nerror: forged") == "a\\nerror: forged"
    assert readers.shown(os.fsdecode(b"caf\xe9.png")) == "caf\\xe9.png"
    assert readers.shown("back\\slash \u202e tab\t") == "back\\\\slash \\u202e tab\\t"
    assert readers.shown("ok-name_1.png") == "ok-name_1.png"


# --------------------------------------------------------------------------- CSV files


def write(tmp_path, text, name="f.csv"):
    (tmp_path / name).write_text(text)
    return tmp_path / name


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b\n1,2\n3,inf\n", r"column 'b' line 3 is not a finite number: 'inf'"),
        ("a,b\n1,nan\n3,4\n", r"column 'b' line 2 is not a finite number: 'nan'"),
        ("a,b\n1,2\n3,x\n", r"column 'b' line 3 has non-numeric value 'x'"),
        ("a,b\n1,2\n\n3,\n", r"column 'b' line 4 has an empty value"),
    ],
)
def test_numbers_are_finite_numbers(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UserError, match=message):
        readers.numeric_column(readers.read_csv(path), "b", path, allow_missing=False)


def test_an_unquoted_thousands_separator_names_its_line(tmp_path):
    path = write(tmp_path, "date,value\n2020-01-04,1,250\n2020-01-11,1,300\n")
    with pytest.raises(UserError, match=r"f.csv: line 2 has 3 fields but the header has 2 .*1,250"):
        readers.read_csv(path)
    quoted = write(tmp_path, 'date,value\n2020-01-04,"1,250"\n', "q.csv")
    with pytest.raises(UserError, match=r"line 2 has non-numeric value '1,250'"):
        readers.numeric_column(readers.read_csv(quoted), "value", quoted, allow_missing=False)


def test_compact_dates_are_dates(tmp_path):
    path = write(tmp_path, "date,value\n20200104,1\n20200111,2\n")
    dates = readers.date_column(readers.read_csv(path), "date", path)
    assert [str(d.date()) for d in dates] == ["2020-01-04", "2020-01-11"]


def test_mixed_time_zones_are_one_line(tmp_path):
    path = write(tmp_path, "date,value\n2020-01-04T10:00+01:00,1\n2020-01-11T10:00+02:00,2\n")
    with pytest.raises(UserError, match=r"f.csv: column 'date' mixes time zones"):
        readers.date_column(readers.read_csv(path), "date", path)


def test_a_headerless_csv_keeps_its_first_row(tmp_path):
    path = write(tmp_path, "1,2\n3,4\n5,6\n")
    frame = readers.read_csv(path, header=None)
    assert len(frame) == 3 and list(frame.columns) == ["0", "1"]
    with_header = readers.read_csv(write(tmp_path, "a,b\n1,2\n", "h.csv"), header=None)
    assert list(with_header.columns) == ["a", "b"] and len(with_header) == 1
