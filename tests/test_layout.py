"""pipeline/layout.py: where the pipeline keeps what it generates (the Makefile's paths are checked
in tests/test_architecture.py)."""

import os
import subprocess
import sys

from pipeline import layout


def test_a_process_has_its_own_sandbox_and_ended_processes_sandboxes_go(project):
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    left = project / ".build" / "sandbox" / f"{ended.stdout.strip()}-0badc0de"
    (left / "models").mkdir(parents=True)
    mine = layout.sandbox()
    assert mine.parent == project / ".build" / "sandbox" and mine.name.startswith(f"{os.getpid()}-")
    assert not left.exists() and layout.sandbox() == mine
