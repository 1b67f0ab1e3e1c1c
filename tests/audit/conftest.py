"""Fixtures of the audit tests; the builders live in audit_helpers."""

from __future__ import annotations

import pytest
from audit_helpers import make_judgment, make_sample


@pytest.fixture
def sample_factory():
    return make_sample


@pytest.fixture
def judgment_factory():
    return make_judgment
