"""Under CI nothing skips: tests/conftest.py's hook turns every skip into a failure, for any truthy `CI`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ci import under_ci

ROOT = Path(__file__).resolve().parents[1]

SKIPPING = '''
import pytest

def test_needs_a_missing_service():
    pytest.skip("the service is missing")

@pytest.mark.skipif(True, reason="a marker skip")
def test_marked():
    pass

@pytest.fixture
def service():
    pytest.skip("the fixture's service is missing")

def test_fixture_skips(service):
    pass

@pytest.mark.xfail(reason="an expected failure is not a skip", strict=True)
def test_expected_failure():
    assert False
'''


@pytest.mark.parametrize("value", ["true", "1", "yes", "TRUE"])
def test_any_truthy_ci_reads_as_ci(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", value)
    assert under_ci()


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_a_false_ci_does_not(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", value)
    assert not under_ci()


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    # The file runs under this suite's conftest (the hook's home), from a directory inside tests/.
    directory = ROOT / "tests" / f"_ci_hook_{os.getpid()}_{tmp_path.name}"
    directory.mkdir()
    try:
        (directory / "__init__.py").write_text("")
        (directory / "test_skipping.py").write_text(SKIPPING)
        env = {k: v for k, v in os.environ.items() if k != "CI"}
        if ci is not None:
            env["CI"] = ci
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", str(directory)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )
    finally:
        for path in sorted(directory.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        directory.rmdir()


@pytest.mark.parametrize("ci", ["true", "1"])
def test_every_skip_fails_under_ci(ci: str, tmp_path: Path) -> None:
    result = _run(tmp_path, ci)
    assert result.returncode == 1, result.stdout + result.stderr
    # A skip in the test fails it; one in a fixture's setup errors it: the run fails either way.
    assert "1 failed, 1 xfailed, 2 errors" in result.stdout, result.stdout
    assert "skipped under CI" in result.stdout


def test_skips_stay_skips_outside_ci(tmp_path: Path) -> None:
    result = _run(tmp_path, None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 skipped" in result.stdout and "1 xfailed" in result.stdout, result.stdout
