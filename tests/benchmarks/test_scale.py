"""The scale section of `make bench` runs end to end at a tiny size; its figures are reported, never
asserted. The peak-memory sampler and the generated folders are checked on their own."""

import json
import sys

import pytest
from PIL import Image

from benchmarks import bench, folders, peak, scale, summary


def test_the_sampler_sums_a_process_tree_anonymous_memory():
    # a child that starts a grandchild, each holding 100 MiB of anonymous memory for a moment
    hold = "import time; x = bytearray(100 * 2**20); x[::4096] = b'1' * len(x[::4096]); time.sleep(0.6)"
    start = f"import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', {hold!r}])"
    child = f"{start}; exec({hold!r}); p.wait()"
    measured = peak.run([sys.executable, "-c", child])
    assert measured.returncode == 0 and measured.seconds >= 0.6
    assert measured.peak_mib > 200  # both processes counted, not only the one started


@pytest.mark.slow  # scikit-learn's digits load in about 2 s
def test_generated_folders_are_the_same_each_time_and_reused(tmp_path):
    first = folders.folder(tmp_path / "a", "photos", 12, seed=3)
    again = folders.folder(tmp_path / "b", "photos", 12, seed=3)
    files = folders.files(first)
    assert len(files) == 12 and {f.parent.name for f in files} == {str(d) for d in range(10)}
    assert [f.read_bytes() for f in files] == [f.read_bytes() for f in folders.files(again)]
    with Image.open(files[0]) as image:
        assert image.format == "JPEG" and all(250 <= side <= 500 for side in image.size)
    stamp = files[0].stat().st_mtime_ns
    assert folders.folder(tmp_path / "a", "photos", 12, seed=3) == first  # reused, not rewritten
    assert files[0].stat().st_mtime_ns == stamp
    (grey,) = folders.files(folders.folder(tmp_path, "grey", 1))
    with Image.open(grey) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "L", (28, 28))


def figures(images: int, prep_peak: float, train_peak: float, ratio: float) -> dict:
    return {
        "images": images,
        "prep_images_per_s": 100.0,
        "raw_images_per_s": 125.0,
        "prep_over_raw": 0.8,
        "prep_peak_mib": prep_peak,
        "train_examples": images * 2 // 3,
        "pipeline_images_per_s": summary([300.0]),
        "bare_images_per_s": summary([300.0 / ratio]),
        "throughput_ratio": summary([ratio]),
        "pipeline_peak_mib": summary([train_peak]),
        "bare_peak_mib": summary([900.0]),
        "bare_cache": True,
    }


def test_targets_are_judged_and_shown_not_asserted():
    results = {"photos-1000": figures(1000, 500, 1000, 1.1), "photos-2000": figures(2000, 600, 4000, 0.9)}
    found = {t["target"]: t["met"] for t in scale.targets(results)}
    assert (
        found["photos-1000: training peak ≤ 3 GB (MiB)"]
        and not found["photos-2000: training peak ≤ 3 GB (MiB)"]
    )
    assert found["photos-1000: epoch images/s pipeline ÷ bare ≥ 0.97"]
    assert not found["photos-2000: epoch images/s pipeline ÷ bare ≥ 0.97"]
    assert not found["prep peak 2000 ÷ 1000 ≤ 1.15"] and not found["training peak 2000 ÷ 1000 ≤ 1.15"]
    table = "\n".join(scale.render({**results, "targets": scale.targets(results)}))
    assert "| photos-2000 | 2000 | 100 | 125 | 0.80 | 600 |" in table
    assert "| photos-2000: training peak ≤ 3 GB (MiB) | 4000.0 | not met |" in table


@pytest.mark.slow
def test_the_scale_section_runs_end_to_end_at_a_tiny_size(bare_project, tmp_path):
    reports = bare_project / "reports"
    reports.mkdir()
    (reports / "bench.json").write_text(json.dumps({"overhead": {"kept": 1}}))
    settings = scale.Settings(
        sizes=(40,), grey=0, repeats=1, epochs=2, hub_images=40, hub_epochs=2, pretrain_epochs=1,
        data_dir=tmp_path / "folders",
    )  # fmt: skip
    assert bench.main(only=["scale"], scale_settings=settings) == 0
    results = json.loads((reports / "bench.json").read_text())
    assert results["overhead"] == {"kept": 1}  # the other sections' figures stay
    photos = results["scale"]["photos-40"]
    assert photos["images"] == 40 and 0 < photos["train_examples"] < 40
    for figure in ("prep_peak_mib", "prep_images_per_s", "raw_images_per_s", "prep_over_raw"):
        assert photos[figure]["median"] > 0 and photos[figure]["n"] == 1  # one per repetition
    for side in ("pipeline", "bare"):
        assert photos[f"{side}_images_per_s"]["median"] > 0 and photos[f"{side}_peak_mib"]["median"] > 0
    hub = results["scale"]["hub"]
    assert hub["epochs"] == 2 and hub["feature"]["fit_s"] > 0 and hub["in_the_loop"]["fit_s"] > 0
    assert {t["target"] for t in results["scale"]["targets"]} >= {
        "frozen hub: fit time in the loop ÷ feature ≥ 5"
    }
    assert "## scale" in (reports / "bench.md").read_text()
    assert (tmp_path / "folders" / "photos-40-seed0" / ".complete").exists()  # kept for the next run


def test_the_scale_figures_are_logged_as_metrics_too():
    results = {
        "machine": {"cores": "2"},
        "overhead": {"throughput_ratio": summary([0.9])},
        "scale": {"settings": {"repeats": 3}, "photos-40": {**figures(40, 30, 600, 1.0), "bare_cache": True}},
    }
    logged = dict(bench.medians(results))
    assert logged["overhead.throughput_ratio"] == 0.9
    assert logged["scale.photos-40.throughput_ratio"] == 1.0 and logged["scale.photos-40.prep_peak_mib"] == 30
    assert not any(key.startswith(("machine", "scale.settings")) or "cache" in key for key in logged)
