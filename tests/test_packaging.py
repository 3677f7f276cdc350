"""The package metadata: the licence as an SPDX expression (PEP 639), which setuptools
takes from 77 on; the TOML-table form printed a deprecation warning on every install
and becomes an error in 2027."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_licence_is_an_spdx_expression() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "Apache-2.0"
    (setuptools,) = [r for r in project["build-system"]["requires"]
                     if r.startswith("setuptools")]
    match = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", setuptools)
    assert match is not None and int(match.group(1)) >= 77, setuptools
    # the installed metadata (scripts/setup-test-env.sh installs camrelay editable)
    metadata = importlib.metadata.metadata("camrelay")
    assert metadata["License-Expression"] == "Apache-2.0"


def test_every_file_of_the_pages_is_package_data() -> None:
    """A wheel carries the console: every file under camrelay/web/static matches a
    package-data pattern (setuptools globs do not descend into sub-directories)."""
    from fnmatch import fnmatch

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = project["tool"]["setuptools"]["package-data"]["camrelay"]
    package = ROOT / "camrelay"
    files = [p.relative_to(package).as_posix()
             for p in (package / "web" / "static").rglob("*") if p.is_file()]
    assert "web/static/console/index.html" in files
    missing = [f for f in files if not any(
        fnmatch(f, pattern) and "/" not in f[len(pattern.rsplit("/", 1)[0]) + 1:]
        for pattern in patterns)]
    assert missing == []
