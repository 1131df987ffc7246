"""A command's wall time and peak anonymous memory, its worker processes included.

Peak memory is what the kernel cannot drop: `RssAnon` + `RssShmem` of /proc/PID/status, summed
over the command's whole process tree, sampled every 0.1 s while it runs. Memory-mapped file pages
and shared libraries do not count (`/usr/bin/time` would show one process's whole RSS instead).

    python -m benchmarks.peak python -m pipeline data my-images     # prints rc, wall, peak
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time

INTERVAL = 0.1  # seconds between samples


@dataclasses.dataclass(frozen=True)
class Measured:
    returncode: int
    seconds: float
    peak_bytes: int

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / 2**20


def tree(pid: int) -> list[int]:
    """`pid` and every descendant (children of every thread, as /proc lists them)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo += [int(child) for child in handle.read().split()]
        except OSError:  # the process ended meanwhile
            pass
    return found


def anonymous_bytes(pid: int) -> int:
    """RssAnon + RssShmem of one process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return 0
    return 1024 * sum(int(line.split()[1]) for line in lines if line.startswith(("RssAnon:", "RssShmem:")))


def tree_bytes(pid: int) -> int:
    return sum(anonymous_bytes(p) for p in tree(pid))


def run(command: list[str], **popen) -> Measured:
    """Run `command` (Popen keyword arguments as given: env, cwd, stdout, ...) to its end."""
    started = time.perf_counter()
    process = subprocess.Popen(command, **popen)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_bytes(process.pid))
            done.wait(INTERVAL)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        returncode = process.wait()
    finally:
        done.set()
        sampler.join()
    return Measured(returncode, time.perf_counter() - started, peak)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m benchmarks.peak COMMAND [ARG ...]", file=sys.stderr)
        return 2
    measured = run(argv)
    print(
        f"rc={measured.returncode} wall={measured.seconds:.2f}s peak_anon={measured.peak_mib:.0f}MiB",
        file=sys.stderr,
    )
    return measured.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
