#!/usr/bin/env python
"""
Install Detectron2 into the running Python environment, unless one is already installed.

No Detectron2 distribution on the package index installs on Python 3.11 as published. The
``sal-detectron2==0.7.2`` wheel carries Detectron2 0.7.2's Python code, but it is tagged for CPython
3.10 and ships a CUDA-12 ``_C`` extension built for 3.10. This script downloads that exact wheel
(pinned version and sha256), and repacks it as a pure-Python wheel named ``detectron2``:

- the compiled ``detectron2/_C*.so`` and the stray top-level ``tools`` package are dropped;
- the WHEEL tag becomes ``py3-none-any`` (purelib);
- METADATA is corrected: ``numpy<2`` and ``black`` are dropped, the missing ``fvcore`` and ``iopath``
  requirements are added;
- RECORD is rewritten with the hashes of what remains.

Nothing in Mask R-CNN needs ``_C`` (it is used by rotated boxes, deformable convolution and the fast
COCO evaluator, which falls back to pycocotools). A user who built Detectron2 from source (e.g. with
its CUDA ops) keeps it: the script does nothing when ``import detectron2`` already works.

Usage: ``python tools/install_detectron2.py [--force] [--cache DIR]``
"""

import argparse
import base64
import hashlib
import importlib.util
import io
import os
import re
import subprocess
import sys
import tempfile
import zipfile

SOURCE_DIST = "sal-detectron2"
SOURCE_VERSION = "0.7.2"
SOURCE_SHA256 = "491af0c7f79bdb2d178e46f6cb16a97c4ac968d45c41ea3f6b6435d59bbee561"
TARGET_NAME = "detectron2"
TARGET_VERSION = "0.7.2"

DROPPED_REQUIREMENTS = ("numpy", "black", "dataclasses")
ADDED_REQUIREMENTS = ("fvcore>=0.1.5,<0.1.6", "iopath>=0.1.7,<0.1.10")


def _is_dropped_member(name: str) -> bool:
    """True for archive members that must not be installed: the CUDA extension and ``tools/``."""
    return name.startswith("tools/") or re.fullmatch(r"detectron2/_C\..*\.so", name) is not None


def _rewrite_metadata(text: str) -> str:
    """Rename the distribution and fix its requirements (see module docstring)."""
    lines = []
    for line in text.splitlines():
        if line.startswith("Name: "):
            line = f"Name: {TARGET_NAME}"
        elif line.startswith("Version: "):
            line = f"Version: {TARGET_VERSION}"
        elif line.startswith("Requires-Dist: "):
            requirement = line[len("Requires-Dist: ") :]
            if "extra ==" not in requirement:
                name = re.split(r"[<>=!~;\s\[]", requirement, maxsplit=1)[0].lower()
                if name in DROPPED_REQUIREMENTS:
                    continue
        lines.append(line)
    header_end = next(i for i, line in enumerate(lines) if line.startswith("Requires-Dist: "))
    added = [f"Requires-Dist: {r}" for r in ADDED_REQUIREMENTS]
    lines[header_end:header_end] = added
    return "\n".join(lines) + "\n"


def _rewrite_wheel_file(text: str) -> str:
    out = []
    for line in text.splitlines():
        if line.startswith("Root-Is-Purelib:"):
            line = "Root-Is-Purelib: true"
        elif line.startswith("Tag:"):
            line = "Tag: py3-none-any"
        out.append(line)
    return "\n".join(out) + "\n"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def repack(source_wheel: bytes) -> tuple[str, bytes]:
    """
    Repack the ``sal-detectron2`` wheel as a pure-Python ``detectron2`` wheel.

    Args:
        source_wheel: the bytes of the downloaded wheel.
    Returns:
        (file name, bytes) of the repacked wheel.
    """
    source_info = f"{SOURCE_DIST.replace('-', '_')}-{SOURCE_VERSION}.dist-info/"
    target_info = f"{TARGET_NAME}-{TARGET_VERSION}.dist-info/"
    members: dict[str, bytes] = {}
    with zipfile.ZipFile(io.BytesIO(source_wheel)) as src:
        for name in src.namelist():
            if _is_dropped_member(name) or name.endswith("/"):
                continue
            data = src.read(name)
            if name.startswith(source_info):
                base = name[len(source_info) :]
                if base == "RECORD":
                    continue
                if base == "METADATA":
                    data = _rewrite_metadata(data.decode()).encode()
                elif base == "WHEEL":
                    data = _rewrite_wheel_file(data.decode()).encode()
                elif base == "top_level.txt":
                    data = b"detectron2\n"
                name = target_info + base
            members[name] = data
    record_lines = [f"{name},{_record_hash(data)},{len(data)}" for name, data in members.items()]
    record_lines.append(f"{target_info}RECORD,,")
    members[target_info + "RECORD"] = ("\n".join(record_lines) + "\n").encode()

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name, data in members.items():
            dst.writestr(name, data)
    return f"{TARGET_NAME}-{TARGET_VERSION}-py3-none-any.whl", out.getvalue()


def _download(cache_dir: str) -> bytes:
    """Download the pinned source wheel (or reuse it from ``cache_dir``) and verify its sha256."""
    file_name = f"{SOURCE_DIST.replace('-', '_')}-{SOURCE_VERSION}-cp310-none-any.whl"
    path = os.path.join(cache_dir, file_name)
    if not os.path.exists(path):
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += ["--python-version", "3.10", f"{SOURCE_DIST}=={SOURCE_VERSION}", "-d", cache_dir]
        subprocess.run(cmd, check=True)
    with open(path, "rb") as f:
        data = f.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SOURCE_SHA256:
        raise SystemExit(
            f"{path}: sha256 {digest} differs from the pinned {SOURCE_SHA256}; "
            "delete the file and rerun to download it again."
        )
    return data


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--force", action="store_true", help="install even if detectron2 imports")
    parser.add_argument("--cache", default=None, help="folder for the downloaded wheel")
    args = parser.parse_args(argv)

    if importlib.util.find_spec("detectron2") is not None and not args.force:
        print("detectron2 is already installed; keeping it.")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = args.cache or tmp
        os.makedirs(cache_dir, exist_ok=True)
        name, data = repack(_download(cache_dir))
        wheel_path = os.path.join(tmp, name)
        with open(wheel_path, "wb") as f:
            f.write(data)
        subprocess.run([sys.executable, "-m", "pip", "install", wheel_path], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
