"""Reading a config file: YAML into plain data, with each value's line and ``${ENV}`` expanded.

The schema validates plain data; this module keeps what the schema cannot know, where each value
stood in the file, so that every error can name ``file:line: field.path``. Values that came from
the environment are remembered as secrets, so the logger and the API can redact them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from watchdogd.errors import ConfigError, ConfigProblem

Path_ = tuple[str | int, ...]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class ConfigSource:
    """The data of one config file, with the line of each value and the secrets it expanded."""

    file: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)

    def line_of(self, path: Path_) -> int:
        """The line of ``path``, or of its nearest ancestor present in the file."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1


def read_config_source(path: str | Path, environ: Mapping[str, str] | None = None) -> ConfigSource:
    """Read and parse ``path``; raise :class:`ConfigError` for unreadable or malformed YAML."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(
            name, [ConfigProblem(1, (), f"cannot read the file: {err.strerror}")]
        ) from err
    return parse_config_text(text, name, os.environ if environ is None else environ)


def parse_config_text(text: str, file: str, environ: Mapping[str, str]) -> ConfigSource:
    """Parse YAML text (see :func:`read_config_source`)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        reason = getattr(err, "problem", None) or str(err)
        raise ConfigError(file, [ConfigProblem(line, (), f"invalid YAML: {reason}")]) from err
    source = ConfigSource(file=file, data=None)
    if node is None:
        raise ConfigError(file, [ConfigProblem(1, (), "the file is empty")])
    problems: list[ConfigProblem] = []
    source.data = _convert(node, (), source, environ, problems)
    if problems:
        raise ConfigError(file, problems)
    return source


def _convert(
    node: yaml.Node,
    path: Path_,
    source: ConfigSource,
    environ: Mapping[str, str],
    problems: list[ConfigProblem],
) -> Any:
    source.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if key in result:
                problems.append(
                    ConfigProblem(key_node.start_mark.line + 1, (*path, str(key)), "duplicate key")
                )
            child = (*path, key)
            result[key] = _convert(value_node, child, source, environ, problems)
            # Point the key itself at its own line: an unknown key is reported there.
            source.lines[child] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _convert(item, (*path, index), source, environ, problems)
            for index, item in enumerate(node.value)
        ]
    value = _scalar(node)
    if isinstance(value, str) and "${" in value:
        return _expand(value, path, source, environ, problems)
    return value


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _expand(
    value: str,
    path: Path_,
    source: ConfigSource,
    environ: Mapping[str, str],
    problems: list[ConfigProblem],
) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            secret = environ[name]
        elif default is not None:
            secret = default
        else:
            problems.append(
                ConfigProblem(
                    source.line_of(path),
                    path,
                    f"environment variable {name} is not set "
                    f"(write ${{{name}:-default}} for a default)",
                )
            )
            return ""
        if secret:
            source.secrets.add(secret)
        return secret

    return _ENV_REF.sub(substitute, value)
