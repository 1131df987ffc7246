"""A throw-away PostgreSQL cluster for tests: initdb in a temp dir, loopback only, stopped after.

Needs the server binaries (Debian package `postgresql`, which .ci/run installs as root); tests
that use it are skipped, saying why, where they are missing. PostgreSQL refuses to run as root,
so as root the cluster runs as the `postgres` user (runuser) in a temp dir that user owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

USER, PASSWORD, DATABASE = "mlflow", "test-secret", "mlflow"


def server_bindir() -> Path | None:
    """Where initdb and pg_ctl are: pg_config's bindir, Debian's versioned folders, or the PATH."""
    candidates = []
    if shutil.which("pg_config"):
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        candidates.append(bindir)
    # Debian: /usr/lib/postgresql/<major>/bin, newest first ("15" after "9": shorter names first)
    majors = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: (len(d), d), reverse=True)
    candidates += majors
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb")).resolve().parent))
    for folder in map(Path, candidates):
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _as_cluster_user() -> tuple[list[str], int | None]:
    """Command prefix and uid to run the server with: ourselves, or `postgres` when we are root."""
    if os.geteuid() != 0:
        return [], None
    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
    if not shutil.which("runuser"):
        pytest.skip("running as root without `runuser` to start PostgreSQL as the `postgres` user")
    return ["runuser", "-u", "postgres", "--"], uid


@contextlib.contextmanager
def cluster(port: int) -> Iterator[str]:
    """Start a cluster on 127.0.0.1:`port` with a password-protected role and database; yields
    the URI `postgresql://mlflow:…@127.0.0.1:<port>/mlflow`."""
    import psycopg2

    bindir = server_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's `postgresql`")
    prefix, uid = _as_cluster_user()
    # not pytest's tmp_path: its parents are private to root, and the server user must reach it
    root = Path(tempfile.mkdtemp(prefix="pipeline-pg-"))
    if uid is not None:
        os.chown(root, uid, -1)
    data, log = root / "data", root / "server.log"

    def run(*command: str) -> None:
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120)
        if done.returncode:
            extra = log.read_text()[-2000:] if log.exists() else ""
            pytest.fail(f"{' '.join(command[:2])} failed:\n{done.stdout}{done.stderr}{extra}")

    # trust on the cluster's own socket (to create the role), passwords over TCP (what clients use)
    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
        "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-locale")  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
    try:
        admin = psycopg2.connect(host=str(root), port=port, user="postgres", dbname="postgres")
        admin.autocommit = True  # CREATE DATABASE cannot run inside a transaction
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
            cursor.execute(f"CREATE DATABASE {DATABASE} OWNER {USER}")
        admin.close()
        yield f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
