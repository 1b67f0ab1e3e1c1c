"""Fixtures for the training tests: a tiny Llama built once per session, and preference data made here."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # read when Ray is imported
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Ray's memory monitor counts every process on this shared machine; at its default 95% it would kill
# training workers while other jobs hold the memory.
os.environ.setdefault("RAY_memory_usage_threshold", "0.98")

import pytest  # noqa: E402
from rlaif_helpers import build_tiny_model, kto_rows, preference_rows, write_jsonl  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def prefs_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("prefs") / "train.jsonl", preference_rows())


@pytest.fixture(scope="session")
def kto_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("kto") / "train.jsonl", kto_rows())
