"""Shared fixtures of the end-to-end suite: the built `faultline` binary and the repository."""
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def faultline_binary() -> pathlib.Path:
    """FAULTLINE_BIN, else the debug build the test command made."""
    explicit = os.environ.get("FAULTLINE_BIN")
    if explicit:
        return pathlib.Path(explicit)
    out = subprocess.run(["swift", "build", "--show-bin-path"], cwd=REPO, capture_output=True, text=True, check=True)
    return pathlib.Path(out.stdout.strip()) / "faultline"


@pytest.fixture(scope="session")
def faultline() -> pathlib.Path:
    binary = faultline_binary()
    if not binary.is_file():
        pytest.fail(f"no faultline binary at {binary}: build it first (swift build --product faultline)")
    return binary


@pytest.fixture(scope="session")
def test_tmp(tmp_path_factory) -> pathlib.Path:
    """FAULTLINE_TEST_TMP when the test command set it (it is torn down with everything left there)."""
    base = os.environ.get("FAULTLINE_TEST_TMP")
    if base:
        path = pathlib.Path(base) / "e2e"
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("e2e")
