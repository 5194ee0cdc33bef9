"""Fixtures; the machinery lives in runnerside.py."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runnerside import Chaos, FakeRunner, Gateway


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """Unix socket paths must stay under 108 bytes, so not pytest's deep tmp_path."""
    base = os.environ.get("FAULTLINE_TEST_TMP") or None
    path = Path(tempfile.mkdtemp(prefix="fl", dir=base))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def runner(short_tmp: Path) -> Iterator[FakeRunner]:
    server = FakeRunner(str(short_tmp / "run.sock"))
    yield server
    server.die()


@pytest.fixture
def chaos(short_tmp: Path) -> Chaos:
    workdir = short_tmp / "work"
    workdir.mkdir()
    return Chaos(workdir)



@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, str]]:
    """The Gateway stand-in and its base URL."""
    state = Gateway()
    server = state.serve()
    yield state, server.url
    server.close()
