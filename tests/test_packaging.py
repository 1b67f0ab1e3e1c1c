"""The wheel is self-contained: installed into a fresh virtualenv, it has its rubric library."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from judge.inputs._rubric import RUBRIC_DIR

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = sorted(p.stem for p in RUBRIC_DIR.glob("*.yaml"))


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_the_rubric_library_lives_inside_the_package() -> None:
    assert RUBRIC_DIR.parent == ROOT / "judge"
    assert len(LIBRARY) == 5


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_wheel_installed_in_a_fresh_venv_lists_the_rubrics(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(ROOT)])
    (wheel,) = dist.glob("judgeloop-*.whl")

    # A venv that sees nothing of this checkout's environment: its own site-packages only.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    # The core dependencies come from whatever package sources pip is configured with.
    _run([str(py), "-m", "pip", "install", "-q", str(wheel)])

    outside = tmp_path / "elsewhere"  # not the checkout, so ./rubrics or ./judge cannot be found by accident
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["JUDGELOOP_CACHE"] = str(tmp_path / "cache")
    where = _run([str(py), "-c", "import judge.inputs as i; print(i.RUBRIC_DIR)"], cwd=outside, env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv)
    listed = _run([str(venv / "bin" / "judgeloop"), "rubrics", "list"], cwd=outside, env=env).stdout
    ids = sorted(line.split()[0] for line in listed.splitlines() if line.strip())
    assert ids == LIBRARY
    shown = _run([str(venv / "bin" / "judgeloop"), "rubrics", "show", "honesty"], cwd=outside, env=env).stdout
    assert "id: honesty" in shown
