"""Loading configs: YAML validated by pydantic, with command-line overrides.

``--config job.yaml`` sets every default; flags given on the command line override single fields.
Unknown keys are errors, reported with file, line and the allowed names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from judge.core._config import ClusterConfig, GenerateConfig, JobConfig, JudgeSpec
from judge.core._errors import ConfigError
from judge.core._yaml import load_model, load_with_overrides

__all__ = ["load_generate_config", "load_job_config", "load_judge_spec"]


def load_judge_spec(path: str | Path) -> JudgeSpec:
    """Load a judge config file (``configs/judge.yaml``): unknown keys are errors with file and line."""
    return load_model(Path(path), JudgeSpec, ConfigError, "judge config", JudgeSpec.model_validate)


def load_job_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> JobConfig:
    """Load a job config file (optional) and apply dotted-key overrides (``judge.backend``)."""
    return load_with_overrides(path, JobConfig, ConfigError, "job config", overrides)


def load_generate_config(
    path: str | Path | None, overrides: dict[str, Any] | None = None
) -> tuple[GenerateConfig, ClusterConfig]:
    """The ``generate:`` section of a round config, its output settled, and the config's cluster section.

    The file is validated whole (its judging keys too), but ``data`` and ``output`` of the judging
    job may be absent: a file may describe only the generation. ``generate.output`` defaults to
    the judging job's ``data``, so ``judgeloop judge`` on the same file judges the candidates.

    Raises:
        ConfigError: no ``generate`` section, no output to write to, or an invalid value.
    """
    from judge.core._yaml import load_yaml

    source = str(path) if path is not None else "command-line options"
    top: Any = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read round config: {exc.strerror or exc}") from None
        top, _ = load_yaml(text, str(path), ConfigError)
    top = top if isinstance(top, dict) else {}
    given = {k for k, v in (overrides or {}).items() if v is not None}
    absent = [n for n in ("data", "output") if n not in top and n not in given]
    # A judging field the file leaves out gets a placeholder; it is never used below.
    filled = {**{n: "-" for n in absent}, **(overrides or {})}
    cfg = load_with_overrides(path, JobConfig, ConfigError, "round config", filled)
    if cfg.generate is None:
        raise ConfigError(
            f"{source}: no `generate:` section; `judgeloop generate` needs one (data: prompts file, policy, k, "
            "sampling, round; see configs/rlaif_round.yaml)"
        )
    gen = cfg.generate
    if gen.output is None:
        if "data" in absent:
            raise ConfigError(
                f"{source}: generate.output: not set, and there is no top-level `data` (the judge's input) to "
                "default to; set generate.output to the candidates file"
            )
        gen = gen.model_copy(update={"output": cfg.data})
    return gen, cfg.cluster
