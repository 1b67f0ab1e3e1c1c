"""Model identity: whole-content fingerprints, remembered per file by path, size and mtime."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from judge.backends import _fingerprint
from judge.backends._base import fingerprint_model_dir

MiB = 1 << 20


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGELOOP_CACHE", str(tmp_path / "cache"))


def _checkpoint(root: Path, middle: bytes = b"\0") -> Path:
    """A model directory with a 12 MiB weight file in safetensors layout: three 4 MiB tensors."""
    import numpy as np
    from safetensors.numpy import save_file

    root.mkdir(parents=True)
    (root / "config.json").write_text('{"model_type": "llama"}')
    rng = np.random.default_rng(0)
    first = rng.standard_normal(MiB, dtype=np.float32)
    mid = rng.standard_normal(MiB, dtype=np.float32)
    last = rng.standard_normal(MiB, dtype=np.float32)
    mid.view(np.uint8)[len(mid.view(np.uint8)) // 2] ^= middle[0]  # one byte deep inside the file
    save_file({"a.weight": first, "b.weight": mid, "c.weight": last}, str(root / "model.safetensors"))
    return root


def test_checkpoints_differing_in_a_middle_tensor_get_different_fingerprints(tmp_path: Path) -> None:
    base = _checkpoint(tmp_path / "round0")
    tuned = _checkpoint(tmp_path / "round1", middle=b"\x01")
    size = (base / "model.safetensors").stat().st_size
    assert size > 8 * MiB and size == (tuned / "model.safetensors").stat().st_size
    import numpy as np

    a = np.fromfile(base / "model.safetensors", dtype=np.uint8)
    b = np.fromfile(tuned / "model.safetensors", dtype=np.uint8)
    diff = np.flatnonzero(a != b)
    # The old head-and-tail hash (first and last MiB) would not see this byte.
    assert len(diff) == 1 and MiB < diff[0] < size - MiB
    assert fingerprint_model_dir(base) != fingerprint_model_dir(tuned)
    # The same bytes elsewhere give the same identity: paths outside the directory do not count.
    copy = tmp_path / "copy"
    shutil.copytree(base, copy)
    assert fingerprint_model_dir(copy) == fingerprint_model_dir(base)


def test_file_names_and_hidden_files(tmp_path: Path) -> None:
    base = _checkpoint(tmp_path / "m")
    before = fingerprint_model_dir(base)
    (base / ".cache").mkdir()
    (base / ".cache" / "lock").write_text("x")
    assert fingerprint_model_dir(base) == before  # hidden files are not the model
    (base / "tokenizer.json").write_text("{}")
    assert fingerprint_model_dir(base) != before


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    reads: list[Path] = []
    real = _fingerprint.file_digest

    def counting(path: Path) -> str:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(_fingerprint, "file_digest", counting)
    return reads


def test_the_memo_avoids_rereading_and_notices_a_changed_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _checkpoint(tmp_path / "m")
    weights = model / "model.safetensors"
    reads = _count_reads(monkeypatch)

    first = fingerprint_model_dir(model)
    assert sorted(p.name for p in reads) == ["config.json", "model.safetensors"]
    memo = json.loads(_fingerprint.memo_path().read_text())
    assert str(weights.resolve()) in memo["files"]

    reads.clear()
    assert fingerprint_model_dir(model) == first
    assert reads == []  # both files remembered

    # Rewritten in place with the same size: a new mtime makes it read again, and the change shows.
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    st = weights.stat()
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    reads.clear()
    changed = fingerprint_model_dir(model)
    assert [p.name for p in reads] == ["model.safetensors"]
    assert changed != first

    # The same mtime but another size is read again too.
    st = weights.stat()
    with weights.open("ab") as fh:
        fh.write(b"\0")
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    reads.clear()
    assert fingerprint_model_dir(model) not in (first, changed)
    assert [p.name for p in reads] == ["model.safetensors"]


def test_a_torn_memo_file_is_ignored(tmp_path: Path) -> None:
    """A torn or foreign memo file is ignored, not an error."""
    model = _checkpoint(tmp_path / "m")
    _fingerprint.memo_path().parent.mkdir(parents=True, exist_ok=True)
    _fingerprint.memo_path().write_text('{"version": 1, "files": {')
    good = fingerprint_model_dir(model)
    assert json.loads(_fingerprint.memo_path().read_text())["version"] == 1
    _fingerprint.memo_path().unlink()
    assert fingerprint_model_dir(model) == good
