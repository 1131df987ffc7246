"""A project that moves: the default store is rewritten once for the folder it is in now.

MLflow makes every artifact location absolute when it creates it (experiments, runs, logged models,
the registry's storage locations, dataset sources), so a copied or moved project would read and
write the original folder's artifacts. `mlruns/.root` records the folder the store was written for;
when the project's root is another, every exact mention of the old root in the store (a path, a
`file://` URI, a JSON string) and in the text files under mlruns/ becomes the new root, under a
lock, before MLflow opens the store (tracking.configure). Nothing is written under the old root.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import sqlite3
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from pipeline import atomic, layout

# the files under mlruns/ that MLflow writes as text and that may name the root (MLmodel, meta,
# requirements, a model's config); binary files (weights, zips, images) are never edited
TEXT_FILES = {"", ".yaml", ".yml", ".json", ".txt", ".ini", ".cfg"}
# how a location the pipeline creates ends: <root>/mlruns/artifacts/<experiment> (a store made
# before the marker existed is recognised by it)
ARTIFACTS = "/mlruns/artifacts/"
# a whole path: at the start of a line, after a quote, a space, '=' or a URI's 'scheme://'
# (sqlite:///<root>/…; a file:// URI holds the path percent-encoded); ending there, at '/', a quote
# or a space
SCHEME = r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*:///?"
BEFORE_PATH = r"(^|[\"'\s=]|(?!file://)" + SCHEME + ")"
BEFORE_FILE_URI = "(file://)"
AFTER_PATH = r"(?=$|[/\"'\s])"


def recorded(root: Path) -> str | None:
    """The root the store was written for, as the marker says (None: no marker yet)."""
    try:
        return layout.store_root_marker(root).read_text().strip() or None
    except FileNotFoundError:
        return None


def follow(root: Path) -> Path | None:
    """Make the project's store at `root` its own: rewrite it once if it was written for another
    folder. Returns that folder when it rewrote, else None. Cheap when nothing moved (one read)."""
    root = root.resolve()
    if recorded(root) == str(root):
        return None
    with _locked(root):
        old = recorded(root)  # another process may have rewritten it meanwhile
        if old is None:
            old = _inferred_root(_database(root))
        moved = old is not None and old != str(root)
        if moved:
            relocate(Path(old), root)
        atomic.write_text(layout.store_root_marker(root), f"{root}\n")
        return Path(old) if moved else None


def relocate(old: Path, root: Path) -> None:
    """Rewrite the store at `root` (and the text files under its mlruns/) from `old` to `root`:
    files first, the database in one transaction last, so a rewrite cut short is done again."""
    for path in (root / "mlruns").rglob("*"):
        if path.suffix in TEXT_FILES and path.is_file() and not path.is_symlink():
            text = path.read_bytes()
            if b"\0" in text:  # binary after all (a file without a suffix): never edited
                continue
            changed = rewrite(text.decode("utf-8", "surrogateescape"), old, root)
            if changed.encode("utf-8", "surrogateescape") != text:
                with atomic.atomic_open(path) as out:
                    out.write(changed.encode("utf-8", "surrogateescape"))
    for database in (_database(root), root / "mlruns" / "server" / "mlflow.db"):
        if database.exists():
            _rewrite_database(database, old, root)


def rewrite(text: str, old: Path, new: Path) -> str:
    """`text` with every exact mention of the folder `old` as `new`: a path (as it is or
    JSON-escaped) or a `file://` URI that is `old` itself or starts with `old/`."""
    for before, old_form, new_form in _forms(old, new):
        pattern = before + re.escape(old_form) + AFTER_PATH
        text = re.sub(pattern, lambda m, new_form=new_form: m.group(1) + new_form, text, flags=re.MULTILINE)
    return text


def _forms(old: Path, new: Path) -> list[tuple[str, str, str]]:
    """(what precedes it, old, new): a path as it is, in a JSON string, in a file URI."""
    forms = [(BEFORE_PATH, str(old), str(new)), (BEFORE_FILE_URI, quote(str(old)), quote(str(new)))]
    escaped = json.dumps(str(old))[1:-1], json.dumps(str(new))[1:-1]
    if escaped[0] != str(old):  # non-ASCII: JSON writes \uXXXX
        forms.append((BEFORE_PATH, *escaped))
    return forms


def _rewrite_database(path: Path, old: Path, new: Path) -> None:
    """Every text value that names `old`, in every table; then VACUUM, so no old page keeps it."""
    needles = {form for _, form, _ in _forms(old, new)}
    with contextlib.closing(sqlite3.connect(path, timeout=60)) as db:
        with db:
            for table, column in _text_columns(db):
                where = " OR ".join(f'instr("{column}", ?) > 0' for _ in needles)
                rows = db.execute(f'SELECT rowid, "{column}" FROM "{table}" WHERE {where}', list(needles))
                for rowid, value in rows.fetchall():
                    changed = rewrite(value, old, new)
                    db.execute(f'UPDATE "{table}" SET "{column}" = ? WHERE rowid = ?', (changed, rowid))
        db.execute("VACUUM")


def _text_columns(db: sqlite3.Connection) -> list[tuple[str, str]]:
    tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return [
        (table, column[1])
        for table in tables
        if not table.startswith("sqlite_")
        for column in db.execute(f'PRAGMA table_info("{table}")')
        if any(kind in column[2].upper() for kind in ("CHAR", "TEXT", "CLOB", "JSON")) or not column[2]
    ]


def _inferred_root(database: Path) -> str | None:
    """The root a store made before the marker existed was written for: its experiments' artifact
    locations are <root>/mlruns/artifacts/<name> (None: no such experiment, nothing to move)."""
    if not database.exists():
        return None
    with contextlib.closing(sqlite3.connect(database, timeout=60)) as db:
        with contextlib.suppress(sqlite3.OperationalError):  # no experiments table yet
            for (location,) in db.execute("SELECT artifact_location FROM experiments"):
                path = unquote(urlparse(location).path) if location.startswith("file:") else location
                if ARTIFACTS in path:
                    return path.rsplit(ARTIFACTS, 1)[0]
    return None


def _database(root: Path) -> Path:
    return root / "mlruns" / "mlflow.db"


@contextlib.contextmanager
def _locked(root: Path):
    """Held while the store is checked and rewritten: parallel runs wait for one rewrite."""
    lock = layout.store_root_lock(root)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield
