"""
Atomic writes: a file is written to a temporary sibling, flushed to disk, then renamed over the
target, so that a reader (or a run killed mid-write) never sees a half-written file
(``docs/failure_behaviour.md``).

A write that fails (full disk, I/O error, no permission) leaves the target as it was and raises a
one-line :class:`WriteFailedError` naming the file, its folder and the fix. A run killed mid-write
leaves its temporary file behind; its name records the writer's host and process id, so that the
next run removes it (:func:`remove_stale_temporary_files`) without touching the temporary file of
a writer still alive.
"""

import errno
import json
import logging
import os
import re
import socket
import tempfile
from collections.abc import Callable
from typing import IO, Any

import torch

__all__ = [
    "WriteFailedError",
    "atomic_write",
    "remove_stale_temporary_files",
    "torch_save_atomic",
    "write_json_atomic",
    "write_text_atomic",
]

logger = logging.getLogger(__name__)

_HOST = socket.gethostname().replace("/", "_")
# ".<name>.<pid>@<host>.<8 random characters>.tmp" (tempfile.mkstemp's random part).
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)@(?P<host>.+)\.[a-z0-9_]{8}\.tmp$")
# Temporary files without a writer's id: ".<name>.<8 random characters>.tmp" of earlier versions,
# and Detectron2's COCO conversion "<dataset>_coco_format.json.tmp" (written, then renamed).
_ANONYMOUS_TEMPORARY = re.compile(r"^(\..+\.[a-z0-9_]{8}|.+_coco_format\.json)\.tmp$")


class WriteFailedError(OSError):
    """
    An atomic write failed (e.g. ``ENOSPC``, ``EIO``): the target file is as it was before the
    write and no temporary file is left. ``errno``, ``strerror`` and ``filename`` are those of the
    underlying ``OSError``.
    """

    def __str__(self) -> str:
        code = errno.errorcode.get(self.errno, str(self.errno))
        folder = os.path.dirname(os.path.abspath(self.filename))
        return (
            f"Could not write {self.filename}: {self.strerror} ({code}). Every file already in"
            f" {folder} is kept as it was (the previous checkpoint and last_checkpoint included)."
            f" Fix: free space in {folder} or make it writable, then rerun the same command"
            " (with --resume for a single step): it resumes from the last complete checkpoint."
        )


def atomic_write(path: str, write: Callable[[IO], None], *, binary: bool = False) -> None:
    """
    Call ``write(f)`` on a temporary file in ``path``'s folder, then replace ``path`` with it.
    The folder is created if needed; on any error the temporary file is removed and ``path`` is
    left as it was. Stale temporary files of earlier writes of ``path`` (killed writers) are
    removed first.

    Raises:
        WriteFailedError: the folder, the temporary file or the rename failed with an ``OSError``.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        _remove_stale_siblings(folder, os.path.basename(path))
        prefix = f".{os.path.basename(path)}.{os.getpid()}@{_HOST}."
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            except OSError:
                logger.warning(f"Could not remove the temporary file {tmp} of a failed write.")
        if isinstance(error, OSError) and not isinstance(error, WriteFailedError):
            code = error.errno if error.errno is not None else errno.EIO
            strerror = error.strerror or str(error)
            raise WriteFailedError(code, strerror, path) from error
        raise


def write_json_atomic(path: str, data: Any, *, indent: int | None = 2) -> None:
    """Write ``data`` as JSON (NaN and infinity refused) to ``path`` atomically."""
    atomic_write(path, lambda f: json.dump(data, f, indent=indent, allow_nan=False))


def write_text_atomic(path: str, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def torch_save_atomic(obj: Any, path: str) -> None:
    """``torch.save(obj)`` to ``path`` atomically."""
    atomic_write(path, lambda f: torch.save(obj, f), binary=True)


def _writer_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user
        return True
    return True


def _is_stale(name: str) -> bool:
    match = _TEMPORARY.match(name)
    if match is None:
        return bool(_ANONYMOUS_TEMPORARY.match(name))
    if match["host"] != _HOST:
        return False  # a writer on another machine of a shared file system: cannot tell
    return not _writer_alive(int(match["pid"]))


def _remove_stale_siblings(folder: str, basename: str) -> None:
    """The stale temporary files of earlier, killed writes of ``<folder>/<basename>``."""
    for name in os.listdir(folder):
        if name.startswith(f".{basename}.") and name.endswith(".tmp") and _is_stale(name):
            try:
                os.unlink(os.path.join(folder, name))
            except FileNotFoundError:
                pass


def remove_stale_temporary_files(folder: str, *, recursive: bool = False) -> list[str]:
    """
    Remove the temporary files that writers killed mid-write left in ``folder`` (and its
    subfolders if ``recursive``): those of :func:`atomic_write` whose process is gone (same host),
    those without a writer's id (earlier versions) and Detectron2's ``*_coco_format.json.tmp``. Return the removed paths. A missing folder is
    not an error.
    """
    if not os.path.isdir(folder):
        return []
    walk = os.walk(folder) if recursive else [next(os.walk(folder))]
    removed = []
    for root, _, names in walk:
        for name in names:
            if name.endswith(".tmp") and _is_stale(name):
                path = os.path.join(root, name)
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                removed.append(path)
    if removed:
        logger.info(f"Removed {len(removed)} temporary file(s) of killed writes: {removed}")
    return removed
