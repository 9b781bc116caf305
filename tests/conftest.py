"""Fixtures shared by the tests: the local service stand-in and the language detector."""

from __future__ import annotations

import pytest


@pytest.fixture
def standin():
    """The local HTTP stand-in of the remote services (generateContent, chat completions, OAuth tokens)."""
    from tests.support.standins import StandIn

    with StandIn() as server:
        yield server


@pytest.fixture(scope="session")
def detector():
    """The language detector of the quality checks (loaded once)."""
    from transforms.quality.langid import LanguageDetector

    return LanguageDetector()
