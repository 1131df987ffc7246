"""`make soak`: many retraining cycles against hostile and unlucky input, checked after every cycle.

In a scratch copy of the project (outside it; your data and store are never touched), with
1-epoch challengers: each cycle gets a random mix of good, corrupt, duplicate-named (a new batch
under a used name), re-sent (the same files again), half-copied (no READY, still being written)
and hostile batches (links out of the batch, a planted REASON.txt link, a FIFO, names with a
newline, bytes that are not UTF-8 or 240 characters, a decompression bomb); a fifth of the cycles
(evenly spaced) are killed (kill -9, through the fault hook PIPELINE_FAULT) at each step in turn
(STEPS), so 50 cycles kill at every step at least once; a killed cycle always gets a good batch (and
a corrupt one for `quarantine`), so the step it is killed at is reached. After every cycle:

  - every batch is where its kind says, exactly once, with its files as they were sent:
    consumed (and in the dataset's manifest once) or quarantined (with its REASON.txt), or still
    in incoming/ while it is being copied or after a killed cycle;
  - the holdout (the test split) is unchanged;
  - the dataset is a whole version, before or after a merge, never between: its files match its
    manifest's sha256, and its training split is the first version's rows followed by exactly the
    rows of the batches the manifest records, in order (a kill inside the append is covered: the
    steps `append`, `stage` and `files`);
  - `champion` is on a version the gate promoted;
  - no MLflow run is left RUNNING (checked once the next cycle has recovered a killed one);
  - nothing outside the scratch project was written (a sentinel folder the links point into);
  - right after a kill: the cycle's good batches are in the manifest exactly when the kill came
    after the data commit (COMMITTED: the next cycle completes it; before: rolls it back);
  - once the next cycle has recovered a kill: no retrain journal is left, no quarantine folder
    holds only its REASON.txt, no run is registered as two versions, and every challenger killed
    after training but before the commit is tagged retrain.rolled_back (one per kill at TRAINED).

The counts go to stdout and reports/soak.json; the exit code is 1 if any invariant was violated.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from benchmarks.scratch import Project
from benchmarks.scratch import project as new_project
from pipeline import atomic
from pipeline.config import project_root
from pipeline.data import versions

STEPS = ("quarantine", "append", "stage", "train", "decide", "files", "commit", "register", "gate", "move")
COMMITTED = ("commit", "register", "gate", "move")  # killed after the data commit
TRAINED = ("train", "decide", "files")  # killed after the challenger trained, before the data commit
HOSTILE = ("link", "reason-link", "fifo", "newline-name", "bytes-name", "long-name", "bomb")
MODEL = "digits-classifier"


@dataclasses.dataclass
class Sent:
    """A batch the soak sent, and where it must end up."""

    name: str  # folder name (may hold a newline or bytes that are not UTF-8: os.fsdecode'd)
    kind: str  # good, corrupt, duplicate-name, re-send, half-copied, or a HOSTILE kind
    fate: str  # consumed | quarantined | waiting
    snapshot: dict  # {relative path: what is there} when sent (complete)


def snapshot(folder: Path) -> dict:
    """{relative path (bytes): sha256 of a file, `link:<target>`, or the kind of a special file}."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            info = os.lstat(path)
            key = os.fsencode(path.relative_to(folder)).decode("latin-1")
            if stat.S_ISREG(info.st_mode):
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(info.st_mode):
                found[key] = "link:" + os.readlink(path)
            elif not stat.S_ISDIR(info.st_mode):
                found[key] = "special"
    return found


def tree_state(folder: Path) -> dict:
    """Every path under `folder` with its size and mtime (links not followed)."""
    if not folder.exists():
        return {}
    return {
        str(p): (os.lstat(p).st_size, os.lstat(p).st_mtime_ns) for p in folder.rglob("*") if not p.is_dir()
    }


# --------------------------------------------------------------------------- the scratch project


def soak_params() -> dict:
    """The project's params.yaml with 1-epoch challengers on 200 examples and a weak gate."""
    params = yaml.safe_load((project_root() / "params.yaml").read_text())
    params["experiments"]["cnn-same"].setdefault("train", {}).update(epochs=1, patience=1, limit=200)
    params["retrain"]["gates"][MODEL].update(threshold=0.1)  # weak champions: some get beaten
    # a half-copied batch must not settle before the next cycle completes it, even on a heavily
    # loaded machine
    params["retrain"]["settle_seconds"] = 600
    return params


class Scratch:
    """The soak's scratch project (its own copy of the code) and a sentinel folder outside it."""

    def __init__(self, project: Project, seed: int):
        self.project, self.root = project, project.root
        self.sentinel = project.root.parent / "outside"
        self.rng = random.Random(seed)
        self.sentinel.mkdir()
        (self.sentinel / "target.txt").write_text("must never change\n")
        home = project.root.parent / "home"
        home.mkdir()
        self.env = project.env(
            HOME=str(home),
            TMPDIR=str(home),
            MPLCONFIGDIR=str(home / "matplotlib"),
            KERAS_HOME=str(home / "keras"),
        )
        self.env.pop("PIPELINE_FAULT", None)

    def pipeline(self, *args: str, fault: str | None = None) -> subprocess.CompletedProcess:
        env = {**self.env, **({"PIPELINE_FAULT": fault} if fault else {})}
        return subprocess.run(
            [sys.executable, "-m", "pipeline", *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )

    @property
    def incoming(self) -> Path:
        return self.root / "data" / "incoming" / "digits"

    def dataset(self) -> versions.Dataset:
        """The scratch project's digits as its committed manifest names them (images memory-mapped)."""
        with self.project.active():  # the Dataset API reads the project's data/
            manifest = versions.read_manifest("digits")
            return versions.Dataset("digits", manifest, versions.read_arrays(manifest))

    def images(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n digits of the validation split with a little noise (so every batch's files differ)."""
        x, y = self.dataset().examples("val")
        x = x.load()
        pick = [self.rng.randrange(len(y)) for _ in range(n)]
        noise = np.array([[self.rng.random() * 0.05 for _ in range(64)] for _ in pick]).reshape(n, 8, 8, 1)
        return np.clip(x[pick] + noise, 0, 1), y[pick]


# --------------------------------------------------------------------------- batches to send


def write_images(folder: Path, x: np.ndarray, y: np.ndarray, start: int = 0) -> None:
    from PIL import Image

    for i, (image, label) in enumerate(zip(x, y, strict=True), start=start):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray((image[..., 0] * 255).round().astype(np.uint8)).save(folder / str(label) / f"{i}.png")


def bomb_png(path: Path) -> None:
    """A 60-byte PNG whose header claims 100000 x 100000 pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))


class Sender:
    """Writes each cycle's batches into the scratch project's incoming folder and remembers them."""

    def __init__(self, scratch: Scratch):
        self.scratch, self.rng = scratch, scratch.rng
        self.sent: list[Sent] = []

    def folder(self, name: str) -> Path:
        return self.scratch.incoming / name

    def send(self, cycle: int, fault: str | None = None) -> None:
        """This cycle's random mix: 0-2 good, and maybe a corrupt, duplicate-named, re-sent,
        half-copied and hostile batch; a cycle to be killed (`fault`) gets what reaches its step."""
        kinds = ["good"] * self.rng.randint(0, 2)
        for kind, share in (
            ("corrupt", 0.4),
            ("duplicate-name", 0.3),
            ("re-send", 0.25),
            ("half-copied", 0.3),
        ):
            if self.rng.random() < share:
                kinds.append(kind)
        if fault and "good" not in kinds:
            kinds.insert(0, "good")
        if fault == "quarantine" and "corrupt" not in kinds:
            kinds.append("corrupt")
        if self.rng.random() < 0.6:  # the hostile kinds in turn, so each one is tried
            kinds.append(HOSTILE[sum(s.kind in HOSTILE for s in self.sent) % len(HOSTILE)])
        for k, kind in enumerate(kinds):
            made = self.make(kind, f"c{cycle:02d}-{kind}-{k}")
            if made is not None:
                self.sent.append(made)

    def make(self, kind: str, name: str) -> Sent | None:
        if kind in ("duplicate-name", "re-send"):
            return self.repeat(kind)
        if kind in ("newline-name", "bytes-name", "long-name"):
            name = {
                "newline-name": name + "\nerror: forged",
                "bytes-name": os.fsdecode(name.encode() + b"-caf\xe9"),
                "long-name": name + "-" + "x" * 230,
            }[kind]
        folder = self.folder(name)
        x, y = self.scratch.images(6 if kind == "half-copied" else 10)
        write_images(folder, x[:3] if kind == "half-copied" else x, y[:3] if kind == "half-copied" else y)
        self.spoil(kind, folder)
        if kind == "half-copied":  # no READY, files written just now: still arriving
            self.half = (folder, x[3:], y[3:])
            return Sent(name, kind, "waiting", snapshot(folder))
        (folder / "READY").touch()
        fate = "consumed" if kind == "good" else "quarantined"
        return Sent(name, kind, fate, snapshot(folder))

    def spoil(self, kind: str, folder: Path) -> None:
        """What makes a batch bad (nothing for good and half-copied ones)."""
        target = self.scratch.sentinel / "target.txt"
        first = next(p for p in sorted(folder.iterdir()) if p.is_dir())
        if kind == "corrupt":
            (first / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
        elif kind == "link":
            (first / "linked.png").symlink_to(target)
        elif kind == "reason-link":
            (folder / "REASON.txt").symlink_to(target)
        elif kind == "fifo":
            os.mkfifo(first / "pipe.png")
        elif kind in ("newline-name", "bytes-name"):
            (first / os.fsdecode(b"caf\xe9.png")).write_bytes(b"not an image")
        elif kind == "bomb":
            bomb_png(first / "bomb.png")

    def repeat(self, kind: str) -> Sent | None:
        """A new batch under a consumed batch's name, or the very same files again."""
        done = [
            s
            for s in self.sent
            if s.kind == "good"
            and s.fate == "consumed"
            and self.consumed(s)
            and not self.folder(s.name).exists()
        ]
        if not done:
            return None
        original = self.rng.choice(done)
        folder = self.folder(original.name)
        if kind == "re-send":
            shutil.copytree(self.consumed(original), folder, symlinks=True)
            return Sent(original.name, kind, "quarantined", snapshot(folder))
        x, y = self.scratch.images(10)
        write_images(folder, x, y)
        (folder / "READY").touch()
        return Sent(original.name, kind, "consumed", snapshot(folder))

    def consumed(self, sent: Sent) -> Path | None:
        path = self.scratch.root / "data" / "consumed" / "digits" / sent.name
        return path if path.is_dir() and snapshot(path) == sent.snapshot else None

    def complete_half_copied(self) -> None:
        """The rest of a half-copied batch arrives, then its READY file."""
        waiting = [s for s in self.sent if s.fate == "waiting"]
        for sent in waiting:
            folder, x, y = self.half
            write_images(folder, x, y, start=3)
            (folder / "READY").touch()
            sent.fate, sent.snapshot = "consumed", snapshot(folder)


# --------------------------------------------------------------------------- the invariants


def locations(scratch: Scratch) -> dict[tuple, list[str]]:
    """{(batch name, snapshot key): [where: incoming | consumed | quarantined, ...]} of every batch
    copy in the scratch project, keyed like the batches that were sent."""
    from pipeline.data.readers import shown

    data_dir = scratch.root / "data"
    manifest = json.loads((data_dir / "processed/digits/manifest.json").read_text())
    names = {e["id"]: e["name"] for e in manifest["batches"]}
    found: dict[tuple, list[str]] = {}

    def add(name, folder, where):
        found.setdefault((shown(name), key_of(snapshot(folder))), []).append(where)

    if scratch.incoming.is_dir():
        for entry in scratch.incoming.iterdir():
            add(os.fsdecode(entry.name), entry, "incoming")
    for entry in (data_dir / "consumed/digits").glob("*"):
        add(names.get(entry.name, f"?{entry.name}"), entry, "consumed")
    for folder in (data_dir / "quarantine/digits").glob("*"):
        reason = folder / "REASON.txt"
        first = reason.read_text().splitlines()[0] if reason.is_file() else ""
        if (folder / "batch").exists():
            found.setdefault((first.removeprefix("batch: "), key_of(snapshot(folder / "batch"))), []).append(
                "quarantined" if first.startswith("batch: ") else "quarantined without REASON.txt"
            )
    return found


def key_of(snap: dict) -> str:
    return hashlib.sha256(json.dumps(snap, sort_keys=True).encode()).hexdigest()


def check_batches(scratch: Scratch, sent: list[Sent], killed: bool) -> list[str]:
    """Every batch exactly once, with its files, where its kind says (after a killed cycle: where
    it was headed, or still in incoming/); no batch committed twice."""
    from collections import Counter

    from pipeline.data.readers import shown

    problems = []
    manifest = json.loads((scratch.root / "data/processed/digits/manifest.json").read_text())
    shas = [e["sha256"] for e in manifest["batches"]]
    if len(set(shas)) != len(shas):
        problems.append("a batch is in the manifest twice")
    found = locations(scratch)
    wanted: dict[tuple, Counter] = {}
    for s in sent:
        where = {"waiting": "incoming"}.get(s.fate, s.fate)
        wanted.setdefault((shown(s.name), key_of(s.snapshot)), Counter())[where] += 1
    for key, expected in wanted.items():
        actual = Counter(found.get(key, []))
        ok = actual == expected
        if killed:  # a killed cycle may have left some in incoming/, to be finished next cycle
            ok = sum(actual.values()) == sum(expected.values()) and set(actual) <= {*expected, "incoming"}
        if not ok:
            problems.append(f"batch {key[0]!r}: expected {dict(expected)}, found {dict(actual)}")
    for key, where in found.items():
        if key not in wanted:
            problems.append(f"unexpected batch copy {key[0]!r} in {where}")
    return problems


def holdout(scratch: Scratch) -> str:
    arrays = scratch.dataset().arrays
    return hashlib.sha256(arrays["x_test"].tobytes() + arrays["y_test"].tobytes()).hexdigest()


def check_dataset(scratch: Scratch, first: versions.Dataset) -> list[str]:
    """The committed dataset is whole: its files hash to its manifest's sha256, and its training
    split is `first`'s rows, then each recorded batch's rows (its stored copy), in order."""
    ds = scratch.dataset()
    if versions.content_hash(ds.arrays) != ds.sha256:
        return ["the dataset's files do not match its manifest's sha256"]
    parts_x, parts_y = [np.asarray(first.arrays["x_train"])], [first.arrays["y_train"]]
    for entry in ds.manifest.batches:
        with np.load(scratch.root / "data/processed/digits/batches" / f"{entry.id}.npz") as npz:
            parts_x.append(ds.to_stored(npz["x"]))
            parts_y.append(npz["y"])
    x, y = np.concatenate(parts_x), np.concatenate(parts_y)
    if ds.count("train") != len(y) or not (
        np.array_equal(ds.arrays["x_train"], x) and np.array_equal(ds.arrays["y_train"], y)
    ):
        return [f"the training split ({ds.count('train')} rows) is not the first version's and its batches'"]
    return []


def check_store(scratch: Scratch, killed: bool) -> list[str]:
    """`champion` on a version the gate promoted; no run RUNNING (once a killed one is recovered)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=scratch.env["MLFLOW_TRACKING_URI"])
    problems = []
    champion = client.get_registered_model(MODEL).aliases.get("champion")
    decision = client.get_model_version(MODEL, champion).tags.get("gate.decision") if champion else None
    if champion and decision != "promoted":
        problems.append(f"champion v{champion} has gate.decision {decision!r}")
    if not killed:
        ids = [e.experiment_id for e in client.search_experiments()]
        running = client.search_runs(ids, filter_string="attributes.status = 'RUNNING'")
        problems += [f"run {r.info.run_name} ({r.info.run_id}) left RUNNING" for r in running]
    return problems


def check_commit(scratch: Scratch, sent: list[Sent], fault: str) -> list[str]:
    """Right after a kill at `fault`: the cycle's good batches (`sent`) are in the manifest exactly
    when the kill came after the data commit."""
    manifest = json.loads((scratch.root / "data/processed/digits/manifest.json").read_text())
    names = {e["name"] for e in manifest["batches"]}
    committed = fault in COMMITTED
    return [
        f"killed at {fault}: batch {s.name!r} is {'not ' if committed else ''}in the manifest"
        for s in sent
        if (s.name in names) != committed
    ]


def check_recovered(scratch: Scratch, train_kills: int) -> list[str]:
    """Once a cycle ran to its end: no journal, no half-made quarantine folder, no run registered
    twice, and one rolled-back challenger per kill after training and before the commit."""
    import mlflow

    from pipeline import layout
    from pipeline.workflows.batches import QUARANTINED, REASON

    problems = []
    if (scratch.root / layout.RETRAIN_JOURNAL.format(model=MODEL)).exists():
        problems.append("a retrain journal was left after a complete cycle")
    for folder in (scratch.root / "data/quarantine/digits").glob("*"):
        if not (folder / QUARANTINED).exists() or not (folder / REASON).is_file():
            problems.append(f"quarantine folder {folder.name!r} is half made")
    client = mlflow.MlflowClient(tracking_uri=scratch.env["MLFLOW_TRACKING_URI"])
    runs = [v.run_id for v in client.search_model_versions(f"name='{MODEL}'")]
    if len(set(runs)) != len(runs):
        problems.append("a run is registered as two model versions")
    ids = [e.experiment_id for e in client.search_experiments()]
    rolled_back = client.search_runs(ids, filter_string="tags.`retrain.rolled_back` = 'true'")
    if len(rolled_back) != train_kills:
        problems.append(
            f"{len(rolled_back)} challengers tagged rolled back after {train_kills} kills at "
            f"{' or '.join(TRAINED)}"
        )
    return problems


def outside_state(scratch: Scratch) -> dict:
    """What must not change: the sentinel folder the links point into, and the real project's data."""
    real = project_root()
    state = tree_state(scratch.sentinel)
    for name in ("data", "mlruns", ".build", "models"):
        state.update(tree_state(real / name))
    return state


# --------------------------------------------------------------------------- the cycles


def fault_of(cycle: int, kill_share: float, kills: int) -> str | None:
    """The step this cycle is killed at, or None: a `kill_share` of the cycles, evenly spaced,
    each at the next step in STEPS (`kills`: the cycles killed so far)."""
    if int((cycle + 1) * kill_share) > int(cycle * kill_share):
        return STEPS[kills % len(STEPS)]
    return None


def one_cycle(scratch: Scratch, sender: Sender, cycle: int, fault: str | None) -> dict:
    sender.complete_half_copied()
    before = len(sender.sent)
    sender.send(cycle, fault)
    started = time.perf_counter()
    result = scratch.pipeline("retrain", "--model", MODEL, fault=fault)
    killed = result.returncode == -9
    problems = []
    if result.returncode not in (0, -9) or (killed and not fault):
        last = (result.stderr.strip().splitlines() or ["?"])[-1]
        problems.append(f"cycle {cycle} exited {result.returncode}: {last}")
    elif fault and not killed:
        problems.append(f"cycle {cycle} was to be killed at {fault} and never reached it")
    if killed:
        good = [s for s in sender.sent[before:] if s.kind == "good"]
        problems += check_commit(scratch, good, fault)
    return {"fault": fault, "killed": killed, "seconds": time.perf_counter() - started, "problems": problems}


def soak(scratch: Scratch, cycles: int, kill_share: float) -> dict:
    first = scratch.pipeline("train", "cnn-same", "--quiet")  # the champion the cycles challenge
    if first.returncode != 0:
        raise RuntimeError(f"the first training failed: {first.stderr[-2000:]}")
    reference, outside, first_version = holdout(scratch), outside_state(scratch), scratch.dataset()
    sender = Sender(scratch)
    counts = {"cycles": 0, "kills": 0, "kills_requested": 0, "violations": 0, "seconds": []}
    kills_by_step = dict.fromkeys(STEPS, 0)
    violations = []
    for cycle in range(cycles):
        done = one_cycle(scratch, sender, cycle, fault_of(cycle, kill_share, counts["kills_requested"]))
        problems = done["problems"]
        problems += check_batches(scratch, sender.sent, done["killed"])
        problems += check_store(scratch, done["killed"])
        if done["killed"]:
            kills_by_step[done["fault"]] += 1
        else:
            problems += check_recovered(scratch, sum(kills_by_step[step] for step in TRAINED))
        if holdout(scratch) != reference:
            problems.append("the holdout changed")
        problems += check_dataset(scratch, first_version)
        if (
            outside_state(scratch) != outside
            or (scratch.sentinel / "target.txt").read_text() != "must never change\n"
        ):
            problems.append("something outside the scratch project was written")
        counts["cycles"] += 1
        counts["kills"] += done["killed"]
        counts["kills_requested"] += done["fault"] is not None
        counts["seconds"].append(round(done["seconds"], 1))
        violations += [f"cycle {cycle}: {p}" for p in problems]
        state = f"killed at {done['fault']}" if done["killed"] else "ok"
        print(
            f"soak cycle {cycle + 1}/{cycles}: {state} · {done['seconds']:.0f} s · "
            f"{len(problems)} violation(s)",
            flush=True,
        )
    counts["violations"] = len(violations)
    counts["kills_by_step"] = kills_by_step
    return {**counts, **gate_counts(scratch), "violation_list": violations[:50], **fates(sender.sent)}


def gate_counts(scratch: Scratch) -> dict:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=scratch.env["MLFLOW_TRACKING_URI"])
    decisions = [v.tags.get("gate.decision", "none") for v in client.search_model_versions(f"name='{MODEL}'")]
    return {"challengers": len(decisions), "promoted": decisions.count("promoted")}


def fates(sent: list[Sent]) -> dict:
    from collections import Counter

    return {
        "batches": len(sent),
        "batches_by_kind": dict(Counter(s.kind for s in sent)),
        "batches_by_fate": dict(Counter(s.fate for s in sent)),
    }


def main(cycles: int = 50, kill_share: float = 0.2, seed: int = 0, keep: bool = False) -> int:
    started = time.perf_counter()
    with new_project(soak_params(), code=True, keep=keep) as project:
        scratch = Scratch(project, seed)
        print(
            f"soak: {cycles} retrain cycles in {scratch.root} (kill share {kill_share}, seed {seed})",
            flush=True,
        )
        result = soak(scratch, cycles, kill_share)
    seconds = result.pop("seconds")
    result |= {
        "seed": seed,
        "kill_share": kill_share,
        "median_cycle_seconds": float(np.median(seconds)) if seconds else None,
        "total_seconds": round(time.perf_counter() - started, 1),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    out = project_root() / "reports" / "soak.json"
    atomic.write_text(out, json.dumps(result, indent=2) + "\n")
    print(
        f"soak: {result['cycles']} cycles · {result['batches']} batches {result['batches_by_fate']} · "
        f"kills {result['kills']} {result['kills_by_step']} · "
        f"invariant violations {result['violations']} → {out}"
    )
    for line in result["violation_list"]:
        print(f"  {line}")
    return 0 if result["violations"] == 0 else 1
