"""PromQL instant-vector selectors without functions: ``name{label op "value", ...}``.

Shared by the config rules (a bad selector is a config error with its line) and the scrape
source (which sums the series a selector matches).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SELECTOR = re.compile(rf"\s*(?P<name>{_NAME})?\s*(?:\{{(?P<body>.*)\}})?\s*", re.DOTALL)
_MATCHER = re.compile(
    r"\s*(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*"
    r"(?:\"(?P<dq>(?:[^\"\\]|\\.)*)\"|'(?P<sq>(?:[^'\\]|\\.)*)')\s*(?P<end>,|$)",
    re.DOTALL,
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True)
class LabelMatcher:
    label: str
    op: str  # "=", "!=", "=~", "!~"
    value: str

    def __post_init__(self) -> None:
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as err:
                raise ValueError(
                    f"bad regex {self.value!r} for label {self.label}: {err}"
                ) from None

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        # PromQL anchors regexes at both ends.
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True)
class Selector:
    """A PromQL instant-vector selector without functions: ``name{label op "value", ...}``."""

    name: str | None
    matchers: tuple[LabelMatcher, ...]

    @classmethod
    def parse(cls, text: str) -> Selector:
        """Parse ``text``; a ``ValueError`` says what is wrong with it."""
        whole = _SELECTOR.fullmatch(text)
        if whole is None or not (whole["name"] or whole["body"] is not None):
            raise ValueError(f'not a metric selector: {text!r} (expected name{{label="v"}})')
        matchers: list[LabelMatcher] = []
        body, position = whole["body"] or "", 0
        while body[position:].strip():
            found = _MATCHER.match(body, position)
            if found is None:
                raise ValueError(f"bad label matcher in {text!r} at {body[position:]!r}")
            raw = found["dq"] if found["dq"] is not None else found["sq"]
            value = _ESCAPE.sub(lambda m: "\n" if m[1] == "n" else m[1], raw)
            matchers.append(LabelMatcher(found["label"], found["op"], value))
            position = found.end()
        if whole["name"] is None and not matchers:
            raise ValueError(f"a selector needs a metric name or a matcher: {text!r}")
        return cls(whole["name"], tuple(matchers))

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        if self.name is not None and name != self.name:
            return False
        with_name = {**labels, "__name__": name}
        return all(matcher.matches(with_name) for matcher in self.matchers)

    def renamed(self, name: str) -> Selector:
        return Selector(name, self.matchers)
