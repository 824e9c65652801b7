"""Load a config file into a :class:`Config`, or raise one :class:`ConfigError` listing every
mistake as ``file:line: field.path: message``.

No message echoes a secret: every problem is scrubbed of the values the file's ``${VAR}``
expanded before the error is raised, so neither ``check-config`` nor a failed reload's log line
shows one.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from watchdogd.config.base import Strict, config_keys, config_types
from watchdogd.config.rules import check_rules, did_you_mean
from watchdogd.config.schema import JSON_SCHEMES, Config
from watchdogd.config.validation import ValidationError, parse
from watchdogd.config.yaml_text import ConfigSource, Path_, parse_config_text, read_config_source
from watchdogd.errors import ConfigError, ConfigProblem
from watchdogd.redact import notifier_secrets, redact


def load_config(
    path: str | Path, environ: Mapping[str, str] | None = None, *, placeholders: bool = False
) -> Config:
    """Read, validate and cross-check ``path``. With ``placeholders`` an unset ``${VAR}`` is
    no error (``check-config``): see :attr:`Config.unset_variables`."""
    return _validate(read_config_source(path, environ, placeholders=placeholders))


def load_config_text(
    text: str, file: str = "<config>", environ: Mapping[str, str] | None = None
) -> Config:
    """As :func:`load_config`, for text already in memory (tests, the demo)."""
    return _validate(parse_config_text(text, file, environ or {}))


def _validate(source: ConfigSource) -> Config:
    if not isinstance(source.data, dict):
        raise ConfigError(
            source.file, [ConfigProblem(1, (), "expected a mapping at the top level")]
        )
    try:
        config = parse(Config, source.data)
    except ValidationError as err:
        problems = [_problem(source, error) for error in err.errors()]
        _fail(source, _without_consequences(problems))
    findings = [
        (path, message)
        for path, message in check_rules(config)
        # A placeholder's value is unknown: what a rule says of it says nothing of the config.
        if not _from_placeholder(source, path)
    ]
    if findings:
        _fail(
            source,
            [ConfigProblem(source.line_of(path), path, message) for path, message in findings],
        )
    # A token written into an Apprise URL is as secret as one that came from ${ENV}.
    in_urls = (
        value
        for notifier in config.notify
        for value in notifier_secrets(notifier.url, JSON_SCHEMES)
    )
    config.remember_secrets(frozenset(source.secrets).union(in_urls))
    names = (name for found in source.placeholders.values() for name in found)
    config.remember_unset_variables(tuple(dict.fromkeys(names)))
    return config


def _fail(source: ConfigSource, problems: list[ConfigProblem]) -> NoReturn:
    scrubbed = [
        ConfigProblem(p.line, p.path, redact(p.message, source.secrets)) for p in _unique(problems)
    ]
    raise ConfigError(source.file, scrubbed) from None


def _from_placeholder(source: ConfigSource, path: Path_) -> bool:
    return any(path[: len(where)] == where for where in source.placeholders)


def _without_consequences(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    """Drop a threshold's error when its gate's metric is already wrong: the unit of ``above``
    depends on the metric, so the second message would only mislead."""
    bad_metrics = {p.path[:-1] for p in problems if p.path and p.path[-1] == "metric"}
    return [
        p
        for p in problems
        if not (p.path and p.path[-1] in ("above", "below") and p.path[:-1] in bad_metrics)
    ]


def _unique(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    return list(dict.fromkeys(problems))


def _problem(source: ConfigSource, error: Any) -> ConfigProblem:
    loc: tuple[str | int, ...] = tuple(error["loc"])
    path = _data_path(source.data, loc)
    kind = error["type"]
    if kind in {"extra_forbidden", "unexpected_keyword_argument"}:
        key = str(path[-1])
        hint = did_you_mean(key, sorted(_allowed_keys(loc[:-1])))
        return ConfigProblem(source.line_of(path), path, f"unknown key{hint}")
    if kind == "missing":
        return ConfigProblem(source.line_of(path[:-1]), path, "required, but missing")
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    unset = source.placeholders.get(path)
    if unset:
        names = ", ".join(unset)
        return ConfigProblem(
            source.line_of(path),
            path,
            f"{names} not set: a placeholder can stand in only where text is expected "
            f"({message}); set it, or write ${{{unset[0]}:-default}}",
        )
    if kind in {"union_tag_invalid", "union_tag_not_found"}:
        message = _tag_message(error)
    if kind in {"enum", "literal_error"}:
        expected = str((error.get("ctx") or {}).get("expected", ""))
        choices = [c.strip(" '") for c in expected.replace(" or ", ", ").split(",")]
        hint = did_you_mean(str(error["input"]), choices)
        message = f"unknown value {error['input']!r}; expected {expected}{hint}"
    return ConfigProblem(source.line_of(path), path, message)


def _tag_message(error: Any) -> str:
    context = error.get("ctx") or {}
    expected = context.get("expected_tags", "")
    tag = context.get("tag")
    if tag is None:
        return f'needs a "type": one of {expected}'
    choices = [t.strip(" '") for t in str(expected).split(",")]
    return f'unknown type "{tag}"; expected one of {expected}{did_you_mean(str(tag), choices)}'


def _data_path(data: Any, loc: tuple[str | int, ...]) -> Path_:
    """The part of pydantic's ``loc`` that exists in the data, dropping union tags and the like;
    a final key that is not in the data (a missing field) is kept."""
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
        elif index == len(loc) - 1 and isinstance(part, str):
            pass  # a missing key: name it
        else:
            continue
        path.append(part)
    return tuple(path)


def _allowed_keys(loc: tuple[str | int, ...]) -> set[str]:
    """The keys the config class at ``loc`` accepts, for "did you mean"."""
    kinds: list[Any] = [Config]
    for part in loc:
        kinds = [child for kind in kinds for child in _children(kind, part)]
    return {key for kind in kinds if _is_config_class(kind) for key in config_keys(kind)}


def _is_config_class(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, Strict)


def _children(kind: Any, part: str | int) -> list[Any]:
    """The types one step below ``kind`` along ``part`` (a field, an index or a union tag)."""
    kind = _unwrap(kind)
    if isinstance(kind, list):
        members = kind
        tagged = [m for m in members if _literal_tag(m) == part]
        return tagged or [c for m in members for c in _children(m, part)]
    origin = typing.get_origin(kind)
    if origin in (list, dict) and (isinstance(part, int) or origin is dict):
        return [typing.get_args(kind)[-1]]
    if _is_config_class(kind):
        names = {field.name: key for key, field in config_keys(kind).items()}
        key = names.get(str(part), part)
        types_ = config_types(kind)
        return [types_[key]] if key in types_ else []
    return []


def _unwrap(kind: Any) -> Any:
    while typing.get_origin(kind) is typing.Annotated:
        kind = typing.get_args(kind)[0]
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return [_unwrap(member) for member in typing.get_args(kind) if member is not type(None)]
    return kind


def _literal_tag(kind: Any) -> Any:
    if _is_config_class(kind) and "type" in config_keys(kind):
        args = typing.get_args(config_types(kind)["type"])
        return args[0] if args else None
    return None
