"""Dependencies, attacked: a floating transitive version (a new Werkzeug or Flask release pulled in
by rq-dashboard), or a file swapped on the index. The locks pin every distribution with hashes,
every install path checks them, and each locked package's own requirements are in its lock."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKS = {"requirements.txt": "requirements.in", "requirements-dev.txt": "requirements-dev.in"}


def locked(lock: str) -> dict[str, tuple[str, list[str]]]:
    """name → (version, hashes) of a pip-compile'd lock."""
    text = (ROOT / lock).read_text().replace("\\\n", " ")
    entries: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        assert not line.startswith("-"), f"{lock}: option line {line!r} (the lock is self-contained)"
        spec, *options = line.split()
        requirement = Requirement(spec)
        pins = [s for s in requirement.specifier if s.operator == "=="]
        assert len(pins) == 1, f"{lock}: {spec} is not pinned with =="
        hashes = [o.removeprefix("--hash=") for o in options if o.startswith("--hash=sha256:")]
        entries[canonicalize_name(requirement.name)] = (pins[0].version, hashes)
    return entries


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_locked_distribution_is_pinned_with_its_hashes(lock: str):
    entries = locked(lock)
    assert entries
    unhashed = sorted(name for name, (_, hashes) in entries.items() if not hashes)
    assert not unhashed, f"{lock}: no hash for {unhashed}"


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_the_lock_is_complete(lock: str):
    """Each locked distribution's own requirements (as installed here) are locked too."""
    entries = locked(lock)
    missing = set()
    for name in entries:
        for spec in metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            if canonicalize_name(requirement.name) not in entries:
                missing.add(f"{requirement.name} (for {name})")
    assert not missing, f"{lock} misses {sorted(missing)}: run scripts/lock"


@pytest.mark.parametrize("lock, source", sorted(LOCKS.items()))
def test_the_lock_agrees_with_its_human_list(lock: str, source: str):
    entries = locked(lock)
    for line in (ROOT / source).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            version = next(iter(requirement.specifier)).version
            assert entries[canonicalize_name(requirement.name)][0] == version, f"{line}: run scripts/lock"


def test_every_install_path_checks_the_hashes():
    assert "--require-hashes" in (ROOT / "scripts" / "lib" / "common.sh").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install --require-hashes .*-r requirements\.txt", dockerfile)
    assert "pip check" in dockerfile
    assert re.search(r"pip check", (ROOT / "scripts" / "test").read_text())
