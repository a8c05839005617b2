"""Atomic writes: every file and folder this package writes appears whole or not at all.

Each writer writes to a temporary name beside the target and renames it into place (`os.replace`, atomic on
one filesystem), so a reader, or a run killed mid-write, never sees half a file; a failed write removes its
temporary and leaves the previous file as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str, *, fsync: bool = False) -> Iterator[str]:
    """Yields a temporary path beside `path` to write; on success it is renamed to `path`, on error removed.

    The temporary name ends with `path`'s own name (`tmp<pid>.<name>`), so writers that insist on a suffix
    (Keras' `.weights.h5`, Pillow's format from `.png`) accept it. A folder may be written there too: an
    existing folder at `path` is then replaced.

    Args:
      path: the file or folder to write; its parent folder is created when missing.
      fsync: flush the written file to disk before the rename (survives a power cut, not only a kill).
    """
    folder, name = os.path.split(os.path.normpath(path))
    os.makedirs(folder or ".", exist_ok=True)
    tmp = os.path.join(folder, f"tmp{os.getpid()}.{name}")
    _remove(tmp)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        if os.path.isdir(tmp):
            _replace_folder(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def write_text_atomic(path: str, text: str, *, fsync: bool = False) -> None:
    """Writes text atomically (`fsync`: see `atomic_path`)."""
    with atomic_path(path, fsync=fsync) as tmp, open(tmp, "w", newline="") as f:
        f.write(text)


def write_json_atomic(path: str, obj: Any) -> None:
    """Writes JSON atomically, indented and with sorted keys."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _replace_folder(tmp: str, path: str) -> None:
    """Puts the folder `tmp` at `path`; an old folder there is moved aside first and deleted after."""
    old = f"{os.path.normpath(path)}.old{os.getpid()}"
    if os.path.exists(path):
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)
