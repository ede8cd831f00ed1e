"""
Atomic writes: a file is written to a temporary sibling, flushed to disk, then renamed over the
target, so that a reader (or a run killed mid-write) never sees a half-written file.
"""

import json
import os
import tempfile
from collections.abc import Callable
from typing import IO, Any

import torch


def atomic_write(path: str, write: Callable[[IO], None], *, binary: bool = False) -> None:
    """
    Call ``write(f)`` on a temporary file in ``path``'s folder, then replace ``path`` with it.
    The folder is created if needed; on any error the temporary file is removed and ``path`` is
    left as it was.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str, data: Any, *, indent: int | None = 2) -> None:
    """Write ``data`` as JSON (NaN and infinity refused) to ``path`` atomically."""
    atomic_write(path, lambda f: json.dump(data, f, indent=indent, allow_nan=False))


def write_text_atomic(path: str, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def torch_save_atomic(obj: Any, path: str) -> None:
    """``torch.save(obj)`` to ``path`` atomically."""
    atomic_write(path, lambda f: torch.save(obj, f), binary=True)
