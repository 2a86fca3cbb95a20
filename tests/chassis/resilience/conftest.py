from __future__ import annotations

import secrets

import pytest

from .fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def dependency() -> str:
    """A dependency name no other test uses, so metric samples are this test's alone."""
    return "dep_" + secrets.token_hex(4)
