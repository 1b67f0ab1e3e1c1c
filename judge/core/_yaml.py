"""YAML loading that remembers where every value came from.

Pydantic reports an error as a path (``criteria.0.scale.3``); to tell a user *where* in the file
that is, we keep PyYAML's node tree next to the constructed data and walk it along the same path.
Duplicate keys, which PyYAML silently collapses, are reported as errors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import pydantic
import yaml

from judge.core._errors import JudgeloopError


def _check_duplicates(node: yaml.Node, source: str, error: type[JudgeloopError]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, yaml.Node] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    first = seen[key.value].start_mark.line + 1
                    raise error(
                        f"{source}:{key.start_mark.line + 1}:{key.start_mark.column + 1}: "
                        f"duplicate key {key.value!r} (first defined on line {first})"
                    )
                seen[key.value] = key
            _check_duplicates(value, source, error)
    elif isinstance(node, yaml.SequenceNode):
        for child in node.value:
            _check_duplicates(child, source, error)


def load_yaml(text: str, source: str, error: type[JudgeloopError]) -> tuple[Any, yaml.Node | None]:
    """Parse YAML text safely, returning the data and its node tree.

    Raises:
        error: on a syntax error or a duplicate key, with file, line and column.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise error(f"{where}: invalid YAML: {exc.problem or exc}") from None
    if node is None:
        return None, None
    _check_duplicates(node, source, error)
    loader = yaml.SafeLoader(text)
    try:
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    return data, node


def node_at(node: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    """Return the deepest node reachable along a pydantic error location."""
    found = node
    for part in loc:
        if isinstance(found, yaml.MappingNode):
            nxt = None
            for key, value in found.value:
                if str(key.value) == str(part):
                    nxt = value
                    break
            if nxt is None:
                return found
            found = nxt
        elif isinstance(found, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(found.value):
                return found
            found = found.value[part]
        else:
            return found
    return found


def _fields_at(model: type[pydantic.BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """Field names of the pydantic model found at ``loc`` below ``model`` (for 'unknown field')."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, pydantic.BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = field.annotation
        # unwrap Optional / list / dict to the model inside
        for _ in range(4):
            args = [a for a in typing.get_args(current) if a is not type(None)]
            if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
                break
            if not args:
                break
            models = [a for a in args if isinstance(a, type) and issubclass(a, pydantic.BaseModel)]
            current = models[0] if models else args[-1]
    if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
        return list(current.model_fields)
    return None


def format_validation_error(
    exc: pydantic.ValidationError,
    source: str,
    node: yaml.Node | None,
    what: str,
    model: type[pydantic.BaseModel] | None = None,
) -> str:
    """Render a pydantic error as ``file:line:col: field: message (given: value)`` lines."""
    lines = [f"{source}: invalid {what} ({exc.error_count()} error{'s' if exc.error_count() != 1 else ''}):"]
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"]
        given = err.get("input")
        # Cross-field checks name their own location as "@a.b.0: message".
        located = re.match(r"^Value error, @([\w.\-]+): (.*)$", msg, re.S)
        if located:
            loc = loc + tuple(int(p) if p.isdigit() else p for p in located.group(1).split("."))
            msg, given = located.group(2), None
        elif msg.startswith("Value error, "):  # pydantic's prefix for our own checks adds nothing
            msg = msg[len("Value error, ") :]
        field = ".".join(str(p) for p in loc) or "(top level)"
        target = node_at(node, loc)
        where = source
        if target is not None:
            where = f"{source}:{target.start_mark.line + 1}:{target.start_mark.column + 1}"
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
            allowed = _fields_at(model, loc[:-1]) if model is not None else None
            if allowed:
                msg += f"; allowed: {', '.join(allowed)}"
        given_txt = ""
        if given is not None and err["type"] != "missing" and not isinstance(given, (dict, list)):
            given_txt = f" (given: {given!r})"
        lines.append(f"  {where}: {field}: {msg}{given_txt}")
    return "\n".join(lines)


def load_model(
    path: Path,
    model: type[pydantic.BaseModel],
    error: type[JudgeloopError],
    what: str,
    build: Callable[[Any], Any] | None = None,
) -> Any:
    """Read a YAML file and build a pydantic model from it, with located errors."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{source}: cannot read {what}: {exc.strerror or exc}") from None
    data, node = load_yaml(text, source, error)
    if not isinstance(data, dict):
        raise error(f"{source}: a {what} must be a YAML mapping, got {type(data).__name__}")
    try:
        return (build or model.model_validate)(data)
    except pydantic.ValidationError as exc:
        raise error(format_validation_error(exc, source, node, what, model)) from None


def load_with_overrides(
    path: str | Path | None,
    model: type[pydantic.BaseModel],
    error: type[JudgeloopError],
    what: str,
    overrides: dict[str, Any] | None = None,
    placeholders: dict[str, Any] | None = None,
) -> Any:
    """A config file (optional) as defaults, with dotted-key overrides (``judge.backend``) on top.

    Required fields the file leaves out may come from the overrides (the command line), so the
    file alone is validated with placeholders for them (``placeholders`` adds or replaces some,
    e.g. a discriminator taken from the command); the placeholders are then dropped again. A
    ``None`` override is no override. Errors in the file are located by line; what fails after the
    overrides are applied is reported against "<file> with command-line options".
    """
    base: dict[str, Any] = {}
    if path is not None:
        required = {n: "-" for n, f in model.model_fields.items() if f.is_required()}
        required.update(placeholders or {})
        in_file: set[str] = set()

        def build(data: dict[str, Any]) -> Any:
            in_file.update(data)
            return model.model_validate({**required, **data})

        base = load_model(Path(path), model, error, what, build).model_dump(exclude_unset=True)
        for name in set(required) - in_file:
            base.pop(name, None)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        target = base
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):  # absent, or null in the file (section: ~)
                target[part] = {}
            target = target[part]
        target[parts[-1]] = value
    try:
        return model.model_validate(base)
    except pydantic.ValidationError as exc:
        # The file validated on its own: what fails now comes from the options (or is still missing).
        source = f"{path} with command-line options" if path is not None else "command-line options"
        raise error(format_validation_error(exc, source, None, what, model)) from None
