"""The image's lock files (scripts/lock-deps writes them; the Dockerfile installs them with
--require-hashes): every dependency pyproject.toml names is pinned exactly, within pyproject's
range, and every pin carries the sha256 of its files. No network: the lock is read, not made."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from harness import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!-]+)$")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")


def parse_lock(path: Path) -> dict[str, tuple[Version, list[str]]]:
    """name -> (version, hashes) of each pin; a line that is neither a pin, a hash of the pin
    before it, nor a comment fails the test."""
    text = path.read_text().replace("\\\n", " ")  # a requirement continued over lines is one line
    pins: dict[str, tuple[Version, list[str]]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement, *options = line.split()
        match = PIN.match(requirement)
        assert match, f"{path.name}:{number}: not pinned with ==: {line!r}"
        bad = [option for option in options if not HASH.match(option)]
        assert not bad, f"{path.name}:{number}: only --hash=sha256: options belong here, not {bad}"
        assert options, f"{path.name}:{number}: {requirement} has no --hash"
        assert len(set(options)) == len(options), f"{path.name}:{number}: a hash twice"
        name = canonicalize_name(match["name"])
        assert name not in pins, f"{path.name}:{number}: {name} pinned twice"
        pins[name] = (Version(match["version"]), options)
    return pins


LOCKS = [("requirements.lock", PYPROJECT["project"]["dependencies"]),
         ("requirements-build.lock", PYPROJECT["build-system"]["requires"])]


@pytest.mark.parametrize(("filename", "wanted"), LOCKS, ids=[name for name, _ in LOCKS])
def test_every_dependency_is_pinned_within_pyprojects_range_with_hashes(filename: str, wanted: list[str]):
    pins = parse_lock(REPO / filename)
    assert pins, f"{filename} pins nothing"
    for text in wanted:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{filename} does not pin {name} (pyproject.toml: {text}); run scripts/lock-deps"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), \
            f"{filename} pins {name}=={version}, outside pyproject.toml's {text}; run scripts/lock-deps"


def test_the_runtime_lock_holds_no_test_only_dependency():
    pins = parse_lock(REPO / "requirements.lock")
    test_only = {canonicalize_name(Requirement(text).name) for text in PYPROJECT["project"]["optional-dependencies"]["test"]}
    runtime = {canonicalize_name(Requirement(text).name) for text in PYPROJECT["project"]["dependencies"]}
    assert not (set(pins) & (test_only - runtime)), "the image would carry test-only packages"


def test_the_parser_refuses_what_pip_would_not_check(tmp_path: Path):
    """The checks above can fail: a pin without a hash, a range instead of a pin, a stray option."""
    digest = "--hash=sha256:" + "0" * 64
    for body in ("anyio==4.7.0\n", "anyio>=4.7 \\\n    " + digest + "\n", "anyio==4.7.0 --no-deps " + digest + "\n",
                 "anyio==4.7.0 --hash=md5:abc\n"):
        lock = tmp_path / "requirements.lock"
        lock.write_text(body)
        with pytest.raises(AssertionError):
            parse_lock(lock)


def test_the_dockerfile_installs_the_locks_with_hashes_and_nothing_unlocked():
    dockerfile = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert installs
    for line in installs:
        if "-r " in line:
            assert "--require-hashes" in line and "--no-deps" in line and "--only-binary=:all:" in line, line
            assert re.search(r"-r \S*requirements(-build)?\.lock", line), line
        else:  # pys6's own wheel: its dependencies are the lock's, already there
            assert "--no-deps" in line and ".whl" in line, line
    assert "--no-build-isolation" in dockerfile  # the wheel built with the locked setuptools, not the latest
    assert "pip check" in dockerfile  # the lock held every dependency of every pin
