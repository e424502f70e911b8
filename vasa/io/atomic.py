"""Atomic file writes: write to a temporary sibling, fsync, then rename over the target.

A crash or a full disk never leaves a half-written file under the final name, so a resumed run can
trust every file it finds.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from vasa.errors import VasaError


def disk_error(path: str | Path, err: OSError) -> VasaError:
    """Turn an OSError from writing ``path`` into a one-line user error."""
    if err.errno == errno.ENOSPC:
        return VasaError(f"disk full while writing {path}: free some space or choose another output folder")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return VasaError(f"cannot write {path}: permission denied (choose a writable output folder)")
    return VasaError(f"cannot write {path}: {err.strerror or err}")


@contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``.

    ``suffix`` keeps the extension for writers that infer the format from it (``.mp4``, ``.npz``).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=(suffix or path.suffix) + ".tmp",
                                   dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise disk_error(path, e) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except OSError as e:
        tmp_path.unlink(missing_ok=True)
        raise disk_error(path, e) from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: object, indent: int | None = 2) -> None:
    """Atomically write ``obj`` as JSON."""
    write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def remove_stale_temporaries(folder: str | Path) -> int:
    """Delete temporaries left by an interrupted run (``.<name>.*.tmp``); returns how many."""
    n = 0
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.rglob(".*.tmp"):
            p.unlink(missing_ok=True)
            n += 1
    return n
