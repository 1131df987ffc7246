"""A dataset's versions on disk (pipeline/data/versions.py): hashed when written and again only
when their files change; staging folders a killed process left are gone after the next run."""

import os
import threading
import time

import pytest

from pipeline import atomic, data, layout
from pipeline.data import versions
from pipeline.errors import UserError


def count_hashes(monkeypatch) -> list:
    calls = []
    real = versions.content_hash
    monkeypatch.setattr(versions, "content_hash", lambda arrays: calls.append(1) or real(arrays))
    return calls


def test_a_version_is_hashed_when_written_and_on_load_only_when_its_files_changed(project, monkeypatch):
    data.prepare("digits")
    hashes = count_hashes(monkeypatch)
    for _ in range(3):
        data.load("digits")
    assert hashes == []  # recorded at commit, newer than every file: trusted as it is
    split = data.processed_dir("digits") / data.read_manifest("digits").images_folder / "x_val.u8"
    stat = split.stat()
    # touched (the same bytes, another mtime): an earlier one, so the record written next is newer
    os.utime(split, ns=(stat.st_atime_ns, stat.st_mtime_ns - 10**9))
    data.load("digits")
    data.load("digits")
    assert len(hashes) == 1  # hashed once, found right, recorded again
    pixels = bytearray(split.read_bytes())
    pixels[7] ^= 1  # one bit, the size unchanged
    split.write_bytes(bytes(pixels))
    with pytest.raises(UserError, match="arrays do not match the manifest's sha256"):
        data.load("digits")


def test_a_file_written_in_the_same_clock_tick_as_the_record_is_hashed_again(project, monkeypatch):
    manifest, _ = data.prepare("digits")
    record = data.processed_dir("digits") / "verified.json"
    npz = data.processed_dir("digits") / manifest.arrays
    when = record.stat().st_mtime_ns
    os.utime(npz, ns=(when, when))  # as old as the record: it may have changed after the record
    hashes = count_hashes(monkeypatch)
    data.load("digits")
    assert len(hashes) == 1


def test_a_staging_folder_of_a_killed_process_is_gone_after_the_next_load(project):
    data.prepare("digits")
    dead = data.processed_dir("digits") / ".staging-999999999-abc"  # no such pid
    live = data.processed_dir("digits") / f".staging-{os.getpid()}-abc"  # a running process's
    for folder in (dead, live):
        folder.mkdir()
        (folder / "x_train.u8").write_bytes(b"\0" * 64)
    data.load("digits")
    assert not dead.exists() and live.exists()


def test_pipeline_data_waits_for_a_retrain_that_holds_the_lock(project, capfd):
    done = threading.Event()

    def prepare():
        data.main(["digits"])
        done.set()

    with atomic.file_lock(layout.retrain_lock(), "retrain", wait=False):
        thread = threading.Thread(target=prepare)
        thread.start()
        time.sleep(0.5)
        assert not done.is_set()
        assert "pipeline data: waiting for pid" in capfd.readouterr().err
    thread.join(60)
    assert done.is_set() and "data digits: prepared" in capfd.readouterr().out
