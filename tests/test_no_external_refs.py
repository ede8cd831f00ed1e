"""
The repository stands on its own: no file cites a document that is not in it.

Forbidden: the names of the design and style notes kept outside the repository, their section
markers (the section sign), references to tracker issues by number and to an issue's goals.
Also, every repository path that README.md or docs/ names exists.
A failure lists each offending ``file:line``.
"""

import os
import re

from tests.conftest import REPO_ROOT

SCANNED = ("ykd", "tools", "tests", "configs", "bench", "docs")
ROOT_FILES = ("README.md", "Makefile", "setup.py", "pyproject.toml", "datasets/README.md")
TEXT_SUFFIXES = (".py", ".md", ".yaml", ".yml", ".json", ".toml", ".txt", ".cfg", ".sh")

# Written so that this file does not match itself.
FORBIDDEN = {
    "a design or style note outside the repository": re.compile(r"\b(?:DESIGN|STYLE)\.md\b"),
    "a section marker of an outside document": re.compile("\u00a7"),
    "a tracker issue by number": re.compile(r"\b[Ii]ssues?[ -]?#?\d+"),
    "the goals of a tracker issue": re.compile(r"\b[Tt]he issue's\b"),
}


def _scanned_files() -> list[str]:
    files = [os.path.join(REPO_ROOT, name) for name in ROOT_FILES]
    for folder in SCANNED:
        for dirpath, dirnames, names in os.walk(os.path.join(REPO_ROOT, folder)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            files += [os.path.join(dirpath, n) for n in names if n.endswith(TEXT_SUFFIXES)]
    return sorted(f for f in files if os.path.isfile(f))


def _lines(path: str):
    with open(path, encoding="utf-8", errors="replace") as f:
        yield from enumerate(f, start=1)


def _where(path: str, number: int, line: str) -> str:
    return f"{os.path.relpath(path, REPO_ROOT)}:{number}: {line.strip()[:120]}"


def test_scan_covers_the_code_and_the_docs():
    relative = {os.path.relpath(p, REPO_ROOT) for p in _scanned_files()}
    assert {"README.md", "ykd/config.py", "tools/train_net.py", "docs/method.md"} <= relative


def test_no_reference_to_a_file_outside_the_repository():
    found = [
        f"{_where(path, number, line)}  [{what}]"
        for path in _scanned_files()
        for number, line in _lines(path)
        for what, pattern in FORBIDDEN.items()
        if pattern.search(line)
    ]
    assert not found, "references to documents outside the repository:\n" + "\n".join(found)


# A repository path in backquotes or as a markdown link or image target, without placeholders or
# globs, e.g. `docs/method.md` or ](bench/results/x.png).
_PATH = re.compile(
    r"(?:`|\]\()((?:ykd|tools|tests|configs|bench|docs|datasets)/[\w./-]+"
    r"\.(?:py|md|yaml|png|json))(?:`|\))"
)


def test_paths_named_by_the_docs_exist():
    docs = [os.path.join(REPO_ROOT, "README.md")] + [
        p for p in _scanned_files() if os.path.relpath(p, REPO_ROOT).startswith("docs" + os.sep)
    ]
    missing = [
        f"{_where(path, number, line)}  [{match}]"
        for path in docs
        for number, line in _lines(path)
        for match in _PATH.findall(line)
        if not os.path.exists(os.path.join(REPO_ROOT, match))
    ]
    assert not missing, "paths named by README.md or docs/ that do not exist:\n" + "\n".join(
        missing
    )
