"""docs/configuration.md against the schema: every model has a section, every section lists
exactly its model's keys, and every default written there is the schema's default."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml
from pydantic import TypeAdapter

from tests.docs.doc_pages import DOCS
from watchdogd.config import schema, steps, traffic
from watchdogd.config.base import Strict, config_keys, config_types
from watchdogd.core.gates import GateMetric

REFERENCE = DOCS / "configuration.md"

#: The heading of each model's section (headings are unique on the page).
SECTIONS: dict[str, type[Strict]] = {
    "Top level": schema.Config,
    "`docker`": schema.DockerSettings,
    "`log`": schema.LogSettings,
    "`server`": schema.ServerSettings,
    "`defaults`": schema.Defaults,
    "`notify`": schema.Notifier,
    "Targets": schema.TargetConfig,
    "`release_dir`": schema.ReleaseDir,
    "`compose`": schema.ComposeRef,
    "`swarm`": schema.SwarmRef,
    "`type: container_health`": schema.ContainerHealthCheck,
    "`type: http`": schema.HttpCheck,
    "`type: auth_flow`": schema.AuthFlowCheck,
    "Auth flow steps": schema.AuthStep,
    "`type: scrape`": schema.ScrapeCheck,
    "`type: promql`": schema.PromqlCheck,
    "Gates": schema.GateConfig,
    "Alerts": schema.AlertRule,
    "Playbook steps": steps.Step,
    "`notify` step": steps.NotifyAction,
    "`exec`": steps.ExecAction,
    "`command`": steps.CommandAction,
    "`sql`": steps.SqlAction,
    "`redis_invalidate`": steps.RedisInvalidateAction,
    "`http` step": steps.HttpAction,
    "`rollback`": steps.RollbackAction,
    "`wait_healthy`": steps.WaitHealthyAction,
    "Traffic": traffic.TrafficConfig,
    "`traffic.haproxy`": traffic.HAProxyRef,
    "`traffic.upstream`": traffic.Upstream,
    "`traffic.pre_checks`": traffic.PreChecks,
    "`traffic.steps`": traffic.CanaryStep,
    "Traffic gates": traffic.TrafficGate,
}
UNSET = "\N{EN DASH}"  # the default column's mark for "optional, unset"
#: Fields the loader derives; nobody writes them.
INTERNAL = {steps.Step: {"action"}}

_HEADING = re.compile(r"^#{2,4}\s+(.+?)\s*$")
_ROW = re.compile(r"^\|\s*`(?P<key>[^`]+)`\s*\|\s*(?P<default>[^|]*?)\s*\|")


def documented() -> dict[str, dict[str, str]]:
    """Heading -> {key: default cell} from the key/default/meaning tables under it."""
    sections: dict[str, dict[str, str]] = {}
    heading, in_table, in_fence = "", False, False
    for line in REFERENCE.read_text().splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        if in_fence:
            continue
        match = _HEADING.match(line)
        if match:
            heading, in_table = match.group(1), False
            continue
        if re.match(r"^\|\s*key\s*\|\s*default\s*\|\s*meaning\s*\|", line):
            in_table = True
            sections.setdefault(heading, {})
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        row = _ROW.match(line)
        if in_table and row:
            sections[heading][row["key"]] = row["default"]
    return sections


def models_in(model: type[Strict]) -> Iterator[type[Strict]]:
    """``model`` and every config class its fields can hold, however nested."""
    yield model
    for annotation in config_types(model).values():
        for inner in _types(annotation):
            yield from models_in(inner)


def _types(annotation: Any) -> Iterator[type[Strict]]:
    if isinstance(annotation, type) and issubclass(annotation, Strict):
        yield annotation
        return
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        yield from _types(typing.get_args(annotation)[0])
    elif origin in (list, dict, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _types(arg)


def keys_of(model: type[Strict]) -> dict[str, dataclasses.Field[Any]]:
    internal = INTERNAL.get(model, set())
    return {key: field for key, field in config_keys(model).items() if field.name not in internal}


def default_of(field: dataclasses.Field[Any]) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def is_required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


class TestEveryModelHasASection:
    def test_models_and_sections_match(self) -> None:
        """A model added to the schema needs a section here, and a section names a model."""
        reachable = set(models_in(schema.Config))
        assert reachable == set(SECTIONS.values())
        assert set(SECTIONS) <= set(documented()), set(SECTIONS) - set(documented())


@pytest.mark.parametrize("heading", list(SECTIONS))
class TestSection:
    def test_lists_exactly_the_schema_keys(self, heading: str) -> None:
        """No key missing, none invented."""
        model = SECTIONS[heading]
        assert set(documented()[heading]) == set(keys_of(model)), model.__name__

    def test_defaults_are_the_schema_defaults(self, heading: str) -> None:
        """`required`, an en dash (unset) or a value that validates to the schema's default."""
        model = SECTIONS[heading]
        cells = documented()[heading]
        annotations = config_types(model)
        for key, field in keys_of(model).items():
            cell = cells.get(key)
            if cell is None:
                continue  # reported by the test above
            where = f"{model.__name__}.{key}: documented {cell!r}"
            if is_required(field):
                assert cell == "required", where
            elif field.default is None:
                assert cell == UNSET, where
            else:
                value = yaml.safe_load(cell.strip("`"))
                parsed = TypeAdapter(annotations[key]).validate_python(value)
                assert parsed == default_of(field), where


class TestNamedValues:
    def test_every_gate_metric_and_kind_is_described(self) -> None:
        """Each gate metric, target kind and on_failure value appears on the page."""
        text = REFERENCE.read_text()
        values = [m.value for m in GateMetric]
        values += [k.value for k in schema.TargetKind] + [o.value for o in steps.OnFailure]
        assert [v for v in values if f"`{v}`" not in text] == []


def test_reference_path() -> None:
    """The page the tests read is the one the index links to."""
    assert Path(__file__).resolve().parents[2] / "docs" / "configuration.md" == REFERENCE
