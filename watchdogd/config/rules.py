"""Rules that span fields, checked once the config has its types.

Each rule yields ``(path, message)``; the loader adds the file and line. They catch at
``check-config`` time what would otherwise fail at run time, or worse, never roll back.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterator

from watchdogd.config.schema import (
    LATENCY_METRICS,
    RATE_METRICS,
    Config,
    GateConfig,
    ScrapeCheck,
    TargetConfig,
    TargetKind,
)
from watchdogd.core.baseline import BASELINE_METRICS
from watchdogd.core.gates import GateMetric
from watchdogd.core.selector import Selector

Finding = tuple[tuple[str | int, ...], str]

# Which gate metrics each check type can feed.
METRICS_BY_CHECK_TYPE: dict[str, frozenset[GateMetric]] = {
    "container_health": frozenset({GateMetric.UNHEALTHY}),
    "http": RATE_METRICS | LATENCY_METRICS,
    "auth_flow": RATE_METRICS | LATENCY_METRICS,
    "scrape": RATE_METRICS | LATENCY_METRICS,
    "promql": frozenset({GateMetric.VALUE}),
}
_URL_SCHEMES = {
    "http": ("http://", "https://"),
    "redis": ("redis://", "rediss://", "unix://"),
    "postgres": ("postgresql://", "postgres://"),
}


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def check_rules(config: Config) -> list[Finding]:
    findings: list[Finding] = []
    if config.api_token and config.api_token_file:
        findings.append((("api_token",), 'set "api_token" or "api_token_file", not both'))
    findings += _duplicates(
        [n.name for n in config.notify], ("notify",), "name", "a second notifier named"
    )
    findings += _duplicates(
        [t.name for t in config.targets], ("targets",), "name", "a second target named"
    )
    notifiers = [n.name for n in config.notify]
    for index, notifier in enumerate(config.notify):
        if "://" not in notifier.url:
            findings.append(
                (
                    ("notify", index, "url"),
                    'expected a URL like "json://host/path" or an Apprise URL',
                )
            )
    for index, target in enumerate(config.targets):
        findings += _target_rules(config, target, ("targets", index), notifiers)
    return findings


def _duplicates(
    names: list[str], path: tuple[str | int, ...], key: str, message: str
) -> Iterator[Finding]:
    seen = Counter[str]()
    for index, name in enumerate(names):
        seen[name] += 1
        if seen[name] == 2:
            yield (*path, index, key), f'{message} "{name}"; names must be unique'


def _target_rules(
    config: Config, target: TargetConfig, path: tuple[str | int, ...], notifiers: list[str]
) -> Iterator[Finding]:
    yield from _kind_rules(target, path)
    checks = {check.name: check for check in target.checks}
    yield from _duplicates(
        [c.name for c in target.checks], (*path, "checks"), "name", "a second check named"
    )
    for index, check in enumerate(target.checks):
        here = (*path, "checks", index)
        if check.type == "container_health" and target.kind == TargetKind.RELEASE_DIR:
            yield (*here, "type"), "a release_dir target has no container to watch"
        if check.type == "scrape":
            yield from _selector_rules(check, here)
        urls = [getattr(check, "url", None)] + [s.url for s in getattr(check, "steps", [])]
        for url in filter(None, urls):
            if not url.startswith(_URL_SCHEMES["http"]):
                yield (*here, "url"), f"expected an http:// or https:// URL, got {url!r}"
    for index, gate in enumerate(target.gates):
        here = (*path, "gates", index)
        if gate.check not in checks:
            hint = did_you_mean(gate.check, list(checks))
            yield (*here, "check"), f'no check named "{gate.check}" in this target{hint}'
            continue
        check = checks[gate.check]
        allowed = METRICS_BY_CHECK_TYPE[check.type]
        if gate.metric not in allowed:
            names = ", ".join(sorted(m.value for m in allowed))
            yield (*here, "metric"), f"a {check.type} check gives {names}, not {gate.metric.value}"
            continue
        if gate.compare == "baseline" or gate.tolerance is not None:
            yield from _baseline_rules(gate, here)
            continue
        yield from _threshold_rules(gate.metric, gate.above, gate.below, here)
    yield from _playbook_rules(config, target, path, notifiers)
    yield from _traffic_rules(target, path)


def _selector_rules(check: ScrapeCheck, here: tuple[str | int, ...]) -> Iterator[Finding]:
    for key in ("requests", "errors", "latency_histogram"):
        text = getattr(check, key)
        if text is None:
            continue
        try:
            Selector.parse(text)
        except ValueError as err:
            yield (*here, key), str(err)


def _kind_rules(target: TargetConfig, path: tuple[str | int, ...]) -> Iterator[Finding]:
    kinds = [kind for kind in TargetKind if getattr(target, kind.value) is not None]
    if target.kind is None:
        yield (*path, "kind"), "set kind: container, compose, swarm or release_dir"
        return
    if target.kind not in kinds:
        yield (*path,), f'a {target.kind.value} target needs "{target.kind.value}:"'
    for other in kinds:
        if other != target.kind:
            yield (
                (*path, other.value),
                f'"{other.value}" does not belong in a {target.kind.value} target',
            )
    if target.release_dir is not None and target.release_dir.restart is None:
        yield (*path, "release_dir", "restart"), "give the command that restarts the app"


def _baseline_rules(gate: GateConfig, here: tuple[str | int, ...]) -> Iterator[Finding]:
    """``compare: baseline`` judges green against blue on the same user traffic, which only
    HAProxy's per-release view gives: it belongs under ``traffic: gates:`` of a canary."""
    if gate.compare != "baseline":
        yield (*here, "tolerance"), "tolerance is for compare: baseline gates"
        return
    if gate.metric not in BASELINE_METRICS:
        names = ", ".join(sorted(m.value for m in BASELINE_METRICS))
        yield (*here, "metric"), f"compare: baseline takes {names}, not {gate.metric.value}"
    for key in ("above", "below"):
        if getattr(gate, key) is not None:
            yield (
                (*here, key),
                "a baseline gate compares with blue, not a threshold; add a separate gate",
            )
    yield (
        (*here, "compare"),
        "compare: baseline judges green against blue on HAProxy's traffic: put it under "
        "traffic: gates: of a strategy: canary target (docs/canary.md)",
    )


def _threshold_rules(
    metric: GateMetric, above: float | None, below: float | None, here: tuple[str | int, ...]
) -> Iterator[Finding]:
    # An unhealthy gate's thresholds are rejected by the schema, which knows their units.
    if metric == GateMetric.UNHEALTHY:
        return
    if metric == GateMetric.VALUE:
        if above is None and below is None:
            yield here, 'a value gate needs "above" or "below"'
    elif above is None:
        yield here, f'a {metric.value} gate needs "above"'
    elif below is not None:
        yield (*here, "below"), f'a {metric.value} gate takes only "above"'


def _playbook_rules(
    config: Config, target: TargetConfig, path: tuple[str | int, ...], notifiers: list[str]
) -> Iterator[Finding]:
    actions = [step.action for step in target.playbook]
    automatic = (
        config.defaults.auto_rollback if target.auto_rollback is None else target.auto_rollback
    )
    if target.playbook and automatic and "rollback" not in actions:
        yield (
            (*path, "playbook"),
            (
                "no rollback step while automatic rollback is on "
                "(add - rollback: {} or set auto_rollback: false)"
            ),
        )
    if actions.count("rollback") > 1:
        yield (*path, "playbook"), "more than one rollback step"
    if (
        "rollback" in actions
        and "wait_healthy" in actions
        and actions.index("wait_healthy") < actions.index("rollback")
    ):
        yield (*path, "playbook"), "wait_healthy must come after rollback"
    for index, step in enumerate(target.playbook):
        here = (*path, "playbook", index, step.action)
        if step.notify is not None and step.notify.to not in notifiers:
            hint = did_you_mean(step.notify.to, notifiers)
            yield here, f'no notifier named "{step.notify.to}" under notify:{hint}'
        if step.exec is not None and target.kind == TargetKind.RELEASE_DIR:
            yield here, "exec needs a container; use command: on a release_dir target"
        if step.redis_invalidate is not None and not step.redis_invalidate.url.startswith(
            _URL_SCHEMES["redis"]
        ):
            yield (*here, "url"), 'expected a URL like "redis://127.0.0.1:6379/0"'
        if step.sql is not None and not step.sql.dsn.startswith(_URL_SCHEMES["postgres"]):
            yield (*here, "dsn"), 'expected a DSN like "postgresql://user@host/db"'
        if step.http is not None and not step.http.url.startswith(_URL_SCHEMES["http"]):
            yield (*here, "url"), "expected an http:// or https:// URL"


def _traffic_rules(target: TargetConfig, path: tuple[str | int, ...]) -> Iterator[Finding]:
    traffic = target.traffic
    if traffic is None:
        return
    here = (*path, "traffic")
    if target.kind not in (TargetKind.CONTAINER, TargetKind.COMPOSE):
        kind = target.kind.value if target.kind else "this"
        yield here, f"traffic: needs a container or compose target, not a {kind} target"
    probes = [c.name for c in target.checks if c.type in ("http", "auth_flow")]
    for index, name in enumerate(traffic.pre_checks.checks or []):
        if name not in probes:
            hint = did_you_mean(name, probes)
            yield (
                (*here, "pre_checks", "checks", index),
                f'no http or auth_flow check named "{name}" in this target{hint}',
            )
