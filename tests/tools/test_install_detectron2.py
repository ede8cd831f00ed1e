import base64
import csv
import hashlib
import io
import zipfile

import pytest

from tests.conftest import load_tool

install = load_tool("install_detectron2")

SOURCE_INFO = "sal_detectron2-0.7.2.dist-info/"
SOURCE_METADATA = """Metadata-Version: 2.1
Name: sal-detectron2
Version: 0.7.2
Requires-Python: >=3.8
License-File: LICENSE
Requires-Dist: Pillow>=7.1
Requires-Dist: numpy<2
Requires-Dist: dataclasses; python_version < "3.7"
Requires-Dist: black
Requires-Dist: packaging
Provides-Extra: dev
Requires-Dist: black==23.3.0; extra == "dev"
"""
SOURCE_WHEEL = "Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: cp310-cp310-linux_x86_64\n"


def _fake_source_wheel() -> bytes:
    """A wheel laid out like sal-detectron2 0.7.2: package, CUDA extension, stray tools/."""
    members = {
        "detectron2/__init__.py": b"__version__ = '0.7.2'\n",
        "detectron2/_C.cpython-310-x86_64-linux-gnu.so": b"\x7fELF binary",
        "detectron2/layers/nms.py": b"def nms(): pass\n",
        "tools/__init__.py": b"",
        "tools/train_net.py": b"print('upstream tool')\n",
        SOURCE_INFO + "METADATA": SOURCE_METADATA.encode(),
        SOURCE_INFO + "WHEEL": SOURCE_WHEEL.encode(),
        SOURCE_INFO + "top_level.txt": b"detectron2\ntools\n",
        SOURCE_INFO + "RECORD": b"stale,,\n",
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


@pytest.fixture(scope="module")
def repacked():
    name, data = install.repack(_fake_source_wheel())
    archive = zipfile.ZipFile(io.BytesIO(data))
    return name, {n: archive.read(n) for n in archive.namelist()}


def test_repacked_wheel_is_pure_python_detectron2(repacked):
    name, members = repacked
    assert name == "detectron2-0.7.2-py3-none-any.whl"
    assert "detectron2/__init__.py" in members and "detectron2/layers/nms.py" in members
    assert not any(n.startswith("tools/") for n in members)
    assert not any(n.endswith(".so") for n in members)
    assert not any(n.startswith(SOURCE_INFO) for n in members)
    wheel = members["detectron2-0.7.2.dist-info/WHEEL"].decode().splitlines()
    assert "Root-Is-Purelib: true" in wheel and "Tag: py3-none-any" in wheel
    assert members["detectron2-0.7.2.dist-info/top_level.txt"] == b"detectron2\n"


def test_metadata_requirements_are_corrected(repacked):
    metadata = repacked[1]["detectron2-0.7.2.dist-info/METADATA"].decode().splitlines()
    assert "Name: detectron2" in metadata
    requirements = [line.split(": ", 1)[1] for line in metadata if line.startswith("Requires-Dist")]
    assert requirements == [
        "fvcore>=0.1.5,<0.1.6",
        "iopath>=0.1.7,<0.1.10",
        "Pillow>=7.1",
        "packaging",
        'black==23.3.0; extra == "dev"',
    ]


def test_record_lists_every_file_with_its_hash(repacked):
    _, members = repacked
    record = members["detectron2-0.7.2.dist-info/RECORD"].decode()
    rows = {row[0]: row[1:] for row in csv.reader(io.StringIO(record))}
    assert set(rows) == set(members)
    for path, (digest, size) in rows.items():
        if path.endswith("RECORD"):
            assert digest == "" and size == ""
            continue
        expected = base64.urlsafe_b64encode(hashlib.sha256(members[path]).digest()).rstrip(b"=")
        assert digest == "sha256=" + expected.decode()
        assert int(size) == len(members[path])


def test_checksum_mismatch_is_refused(tmp_path):
    bad = tmp_path / "sal_detectron2-0.7.2-cp310-none-any.whl"
    bad.write_bytes(b"not the pinned wheel")
    with pytest.raises(SystemExit, match="differs from the pinned"):
        install._download(str(tmp_path))


def test_existing_detectron2_is_kept(capsys):
    assert install.main([]) == 0
    assert "already installed" in capsys.readouterr().out
