"""Reading a config file: YAML into plain data, with each value's line and ``${ENV}`` expanded.

The schema validates plain data; this module keeps what the schema cannot know, where each value
stood in the file, so that every error can name ``file:line: field.path``. Values that came from
the environment are remembered as secrets, so the logger and the API can redact them; a
``${VAR:-default}`` default is written in the file, so it is no secret.

Hostile or broken files get a config error, never a traceback: text that is not UTF-8, nesting
deeper than :data:`MAX_DEPTH`, keys that are not plain values, and aliases that would expand to
more than :data:`MAX_EXPANDED` values (a "billion laughs" file is a few hundred bytes). Values
written out in the file are not limited: their number is bounded by the file's size, and a
config of 1000 targets has some 20 000 of them.

With ``placeholders``, a ``${VAR}`` that is not set stands in as the text ``${VAR}`` and its path
is remembered, so ``check-config`` can check a config without its secrets (the loader then
ignores what the cross-field rules say about that one value).
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

#: Deeper nesting is refused: real configs stay under 10 levels, and PyYAML composes
#: recursively, so a 20 000-deep file would otherwise end in a RecursionError.
MAX_DEPTH = 64
#: More values than this reached through aliases (a node visited again) are refused.
MAX_EXPANDED = 100_000


@dataclass
class ConfigSource:
    """The data of one config file, with the line of each value and the secrets it expanded."""

    file: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)
    #: Where an unset ``${VAR}`` stands in as a placeholder, and the variables' names.
    placeholders: dict[Path_, list[str]] = field(default_factory=dict)
    expanded: int = 0

    def line_of(self, path: Path_) -> int:
        """The line of ``path``, or of its nearest ancestor present in the file."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1


def read_config_source(
    path: str | Path, environ: Mapping[str, str] | None = None, *, placeholders: bool = False
) -> ConfigSource:
    """Read and parse ``path``; raise :class:`ConfigError` for unreadable or malformed YAML."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(
            name, [ConfigProblem(1, (), f"cannot read the file: {err.strerror}")]
        ) from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        problem = f"not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start})"
        raise ConfigError(name, [ConfigProblem(line, (), problem)]) from None
    environ = os.environ if environ is None else environ
    return parse_config_text(text, name, environ, placeholders=placeholders)


def parse_config_text(
    text: str, file: str, environ: Mapping[str, str], *, placeholders: bool = False
) -> ConfigSource:
    """Parse YAML text (see :func:`read_config_source`)."""
    try:
        node = yaml.compose(text, Loader=_DepthLimitedLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        reason = getattr(err, "problem", None) or str(err)
        raise ConfigError(file, [ConfigProblem(line, (), f"invalid YAML: {reason}")]) from None
    source = ConfigSource(file=file, data=None)
    if node is None:
        raise ConfigError(file, [ConfigProblem(1, (), "the file is empty")])
    problems: list[ConfigProblem] = []
    walk = _Walk(source, environ, problems, placeholders)
    try:
        source.data = walk.convert(node, ())
    except _TooManyValues as err:
        problem = (
            f"aliases expand to more than {MAX_EXPANDED} values (aliases nested in aliases?); "
            "refusing to expand it"
        )
        raise ConfigError(file, [ConfigProblem(err.line, (), problem)]) from None
    if problems:
        raise ConfigError(file, problems)
    return source


class _DepthLimitedLoader(yaml.SafeLoader):
    """A SafeLoader that refuses nesting deeper than :data:`MAX_DEPTH` as a YAML error."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _TooManyValues(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


@dataclass
class _Walk:
    """YAML nodes to plain data, noting lines, secrets and placeholders on the way."""

    source: ConfigSource
    environ: Mapping[str, str]
    problems: list[ConfigProblem]
    placeholders: bool
    # One constructor for the whole file: a scalar's Python value (int, bool, str, …).
    constructor: yaml.constructor.SafeConstructor = field(
        default_factory=yaml.constructor.SafeConstructor
    )
    seen: set[int] = field(default_factory=set)  # the nodes converted once (ids: alive)

    def convert(self, node: yaml.Node, path: Path_) -> Any:
        source = self.source
        if id(node) in self.seen:  # reached again through an alias
            source.expanded += 1
            if source.expanded > MAX_EXPANDED:
                raise _TooManyValues(node.start_mark.line + 1)
        else:
            self.seen.add(id(node))
        source.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problems.append(ConfigProblem(line, path, "a key must be a plain value"))
                    continue
                key = self.scalar(key_node)
                if key in result:
                    self.problems.append(ConfigProblem(line, (*path, str(key)), "duplicate key"))
                child = (*path, key)
                result[key] = self.convert(value_node, child)
                # Point the key itself at its own line: an unknown key is reported there.
                source.lines[child] = line
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, index)) for index, item in enumerate(node.value)]
        value = self.scalar(node)
        if isinstance(value, str) and "${" in value:
            return self.expand(value, path)
        return value

    def scalar(self, node: yaml.Node) -> Any:
        return self.constructor.construct_object(node, deep=True)

    def expand(self, value: str, path: Path_) -> str:
        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in self.environ:
                secret = self.environ[name]
                if secret:
                    self.source.secrets.add(secret)
                return secret
            if default is not None:
                return default  # written in the file for all to read: not a secret
            if self.placeholders:
                self.source.placeholders.setdefault(path, []).append(name)
                return match.group(0)
            self.problems.append(
                ConfigProblem(
                    self.source.line_of(path),
                    path,
                    f"environment variable {name} is not set "
                    f"(write ${{{name}:-default}} for a default)",
                )
            )
            return ""

        return _ENV_REF.sub(substitute, value)
