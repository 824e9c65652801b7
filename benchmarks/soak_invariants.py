"""The soak's invariants: pure functions over plain values, so that they are unit-tested
(tests/benchmarks/test_soak_invariants.py) apart from the engine and the daemon.

``benchmarks/soak.py`` collects a :class:`History` (what it did) and an :class:`Observed` (what
watchdogd recorded in its store and what the Docker engine runs at the end), and
:func:`check` turns them into one :class:`Verdict` per invariant:

* ``bad rolled back``: every bad deploy is detected by an incident that succeeds, within the
  promise (``History.detect_promise`` after the deploy, plus the time the daemon or the engine
  was away meanwhile) and restored within ``restore_promise`` of its detection;
* ``no false rollback``: no automatic incident (gate, alert, quarantine) while a good release
  is what the soak deployed last;
* ``non-idempotent once``: no journal row of a non-idempotent step has ``attempt`` > 1, and the
  side effect of the playbook's ``command`` step (one line per incident) is there once at most;
* ``incidents end``: every incident ends succeeded, failed or aborted;
* ``records agree``: per target, the release the engine runs is the one the API reports and,
  when a rollback came after the last deploy, the one the journal says it restored; every
  succeeded incident has its succeeded rollback step in the journal and its end in the audit
  log;
* ``no leaks``: no container, network or volume of watchdogd's is left;
* ``rss flat`` / ``fds flat``: the daemon's memory and open files over the longest-lived
  daemon process's samples after its warm-up (its first five minutes), judged when at least
  five more minutes remain: memory by its least-squares slope, open files by how far their
  high-water mark rose (an engine restart empties the Docker connection pools, which then
  refill to their old mark: a slope reads that as growth).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

AUTOMATIC_TRIGGERS = frozenset({"gate", "alert", "quarantine"})
FINAL_STATES = frozenset({"succeeded", "failed", "aborted"})
# Growth over a run that still counts as flat: the allocator's and the windows' steady state
# is reached after a few minutes, and a short run sees part of that warm-up.
RSS_FLAT_BYTES = 8 * 1024 * 1024
FDS_FLAT = 8
# A process's first five minutes are warm-up: its windows (5 minutes long) are still filling.
WARM_UP = 300.0
MIN_SPAN = 300.0  # and it must then have lived this long again to judge its slope


@dataclass(frozen=True)
class Deploy:
    """One deploy the soak made: ``label`` names the release (``good-7``, ``bad-500s-3``)."""

    at: float
    target: str
    label: str
    bad: bool
    how: str = ""


@dataclass(frozen=True)
class Outage:
    """The daemon (``what="daemon"``) or the engine (``"engine"``) away from ``start`` to
    ``end``."""

    start: float
    end: float
    what: str


@dataclass(frozen=True)
class Incident:
    id: str
    target: str
    trigger_kind: str
    state: str
    started_at: float
    ended_at: float | None


@dataclass(frozen=True)
class JournalRow:
    incident_id: str
    step_index: int
    action: str
    attempt: int
    status: str


@dataclass(frozen=True)
class Sample:
    at: float
    pid: int
    rss: int
    fds: int


@dataclass
class History:
    """What the soak did."""

    deploys: list[Deploy] = field(default_factory=list)
    outages: list[Outage] = field(default_factory=list)
    detect_promise: float = 20.0  # the bake time: a bad release must not bake
    restore_promise: float = 45.0


@dataclass
class Observed:
    """What watchdogd recorded and what the engine runs, after the run."""

    incidents: list[Incident] = field(default_factory=list)
    journal: list[JournalRow] = field(default_factory=list)
    non_idempotent: frozenset[str] = frozenset({"command", "exec", "sql", "http"})
    command_log: list[str] = field(default_factory=list)  # one incident id per command run
    audit_ends: set[str] = field(default_factory=set)  # incidents with an end in the audit log
    running: dict[str, str] = field(default_factory=dict)  # target -> label the engine runs
    believed: dict[str, str] = field(default_factory=dict)  # target -> label the API reports
    # target -> (start, label restored) of its last succeeded incident, from the journal
    last_restore: dict[str, tuple[float, str]] = field(default_factory=dict)
    leaks: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    # Blue-green releases whose bake a restart cut short: users went back to blue with no
    # incident (judged by soak_bluegreen_invariants).
    switched_back: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Verdict:
    name: str
    checked: int
    violations: tuple[str, ...] = ()
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class Timing:
    """Detection and restore of one bad deploy, seconds from the deploy."""

    label: str
    detect: float
    restore: float | None


def active_deploy(deploys: Sequence[Deploy], target: str, at: float) -> Deploy | None:
    """The last deploy to ``target`` at or before ``at``."""
    found = None
    for deploy in deploys:
        if deploy.target == target and deploy.at <= at:
            found = deploy
    return found


def downtime(outages: Sequence[Outage], start: float, end: float) -> float:
    """Seconds of [start, end] during which the daemon or the engine was away (overlaps merged)."""
    spans = sorted((max(o.start, start), min(o.end, end)) for o in outages)
    total, reach = 0.0, start
    for begin, finish in spans:
        clipped = max(begin, reach)
        if finish > clipped:
            total += finish - clipped
            reach = finish
    return total


def _next_deploy_at(deploys: Sequence[Deploy], deploy: Deploy) -> float:
    later = [d.at for d in deploys if d.target == deploy.target and d.at > deploy.at]
    return min(later, default=float("inf"))


def bad_rolled_back(history: History, observed: Observed) -> tuple[Verdict, list[Timing]]:
    violations, timings = [], []
    bad = [d for d in history.deploys if d.bad]
    for deploy in bad:
        until = _next_deploy_at(history.deploys, deploy)
        mine = sorted(
            (
                i
                for i in observed.incidents
                if i.target == deploy.target and deploy.at <= i.started_at < until
            ),
            key=lambda i: i.started_at,
        )
        done = next((i for i in mine if i.state == "succeeded"), None)
        if done is None and deploy.label in observed.switched_back:
            continue
        if done is None:
            states = ", ".join(f"{i.id} {i.state}" for i in mine) or "no incident"
            violations.append(f"{deploy.label} on {deploy.target} never rolled back ({states})")
            continue
        first = mine[0]
        detect = first.started_at - deploy.at
        allowed = history.detect_promise + downtime(history.outages, deploy.at, first.started_at)
        if detect > allowed:
            violations.append(
                f"{deploy.label} on {deploy.target} detected after {detect:.1f} s "
                f"(promise {allowed:.1f} s)"
            )
        restore = None if done.ended_at is None else done.ended_at - deploy.at
        timings.append(Timing(deploy.label, detect, restore))
        if done.ended_at is not None:
            took = done.ended_at - first.started_at
            budget = history.restore_promise + downtime(
                history.outages, first.started_at, done.ended_at
            )
            if took > budget:
                violations.append(
                    f"{deploy.label} on {deploy.target} restored {took:.1f} s after detection "
                    f"(promise {budget:.1f} s)"
                )
    return Verdict("bad releases rolled back in time", len(bad), tuple(violations)), timings


def no_false_rollback(history: History, observed: Observed) -> Verdict:
    violations = []
    automatic = [i for i in observed.incidents if i.trigger_kind in AUTOMATIC_TRIGGERS]
    for incident in automatic:
        deploy = active_deploy(history.deploys, incident.target, incident.started_at)
        if deploy is None or deploy.bad:
            continue
        violations.append(
            f"{incident.id} ({incident.trigger_kind}) rolled back good {deploy.label} "
            f"on {incident.target}"
        )
    return Verdict("no good release rolled back", len(automatic), tuple(violations))


def non_idempotent_once(observed: Observed) -> Verdict:
    violations = [
        f"{row.incident_id} step {row.step_index} ({row.action}) ran {row.attempt} times"
        for row in observed.journal
        if row.action in observed.non_idempotent and row.attempt > 1
    ]
    violations += [
        f"{incident} ran its command step {count} times"
        for incident, count in sorted(Counter(observed.command_log).items())
        if count > 1
    ]
    checked = sum(1 for r in observed.journal if r.action in observed.non_idempotent)
    return Verdict("no non-idempotent step ran twice", checked, tuple(violations))


def incidents_end(observed: Observed) -> Verdict:
    violations = [
        f"{i.id} on {i.target} is {i.state}"
        for i in observed.incidents
        if i.state not in FINAL_STATES
    ]
    return Verdict("every incident ends", len(observed.incidents), tuple(violations))


def records_agree(history: History, observed: Observed) -> Verdict:
    violations = [
        f"{target}: the engine runs {label}, watchdogd believes {observed.believed.get(target)}"
        for target, label in sorted(observed.running.items())
        if observed.believed.get(target) != label
    ]
    for target, (started_at, restored) in sorted(observed.last_restore.items()):
        deployed = active_deploy(history.deploys, target, float("inf"))
        if (deployed is None or deployed.at < started_at) and observed.running.get(
            target
        ) != restored:
            violations.append(
                f"{target}: the journal's last rollback restored {restored}, "
                f"the engine runs {observed.running.get(target)}"
            )
    rolled = {
        r.incident_id
        for r in observed.journal
        if r.action == "rollback" and r.status in {"succeeded", "skipped"}
    }
    for incident in observed.incidents:
        if incident.state != "succeeded":
            continue
        if incident.id not in rolled:
            violations.append(f"{incident.id} succeeded without a succeeded rollback step")
        if incident.id not in observed.audit_ends:
            violations.append(f"{incident.id} succeeded but its end is not in the audit log")
    checked = len(observed.running) + sum(1 for i in observed.incidents if i.state == "succeeded")
    return Verdict("journal, audit log and engine agree", checked, tuple(violations))


def no_leaks(observed: Observed) -> Verdict:
    return Verdict("nothing of watchdogd's leaked", 1, tuple(observed.leaks))


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x; 0 for fewer than two distinct x."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def longest_lived(samples: Sequence[Sample]) -> list[Sample]:
    """The longest-lived daemon process's samples, oldest first."""
    by_pid = Counter(s.pid for s in samples)
    if not by_pid:
        return []
    pid = by_pid.most_common(1)[0][0]
    return sorted((s for s in samples if s.pid == pid), key=lambda s: s.at)


def steady_samples(samples: Sequence[Sample]) -> list[Sample]:
    """The longest-lived daemon process's samples, without its warm-up."""
    mine = longest_lived(samples)
    return [s for s in mine if s.at >= mine[0].at + WARM_UP]


def high_water_growth(samples: Sequence[Sample]) -> float:
    """How far the open files' high-water mark rose: the most open in the last third of the
    judged span, minus the most open before that span (the warm-up's included). A pool of
    connections that the engine's restart emptied refills to its old mark, which a slope
    over the span reads as growth (docker-py keeps up to 25 idle sockets); a leak raises the
    mark, by as much as the slope times the span would say."""
    mine = longest_lived(samples)
    kept = [s for s in mine if s.at >= mine[0].at + WARM_UP]
    if len(kept) < 2:
        return 0.0
    span = kept[-1].at - kept[0].at
    before = [s.fds for s in mine if s.at < kept[0].at] or [kept[0].fds]
    last = [s.fds for s in kept if s.at >= kept[-1].at - span / 3]
    return float(max(last) - max(before))


def flat(observed: Observed, what: str, limit: float) -> Verdict:
    """``what`` is ``rss`` or ``fds``; its growth over the judged span must stay under
    ``limit``: the slope times the span for memory, the high-water mark's rise for open files
    (``high_water_growth``). The slope is reported for both."""
    kept = steady_samples(observed.samples)
    points = [(s.at, float(getattr(s, what))) for s in kept]
    per_second = slope(points)
    span = points[-1][0] - points[0][0] if len(points) > 1 else 0.0
    unit, scale = ("MB", 1024 * 1024) if what == "rss" else ("fds", 1)
    note = f"slope {per_second * 3600 / scale:+.2f} {unit}/h over {span / 60:.1f} min"
    if span < MIN_SPAN:
        return Verdict(f"daemon {what} flat", len(points), (), note + ", too short to judge")
    if what == "fds":
        growth = high_water_growth(observed.samples)
        measured = f"its high-water mark rose {growth:.0f} fds"
        note += f"; high-water mark {growth:+.0f}"
    else:
        growth = per_second * span
        measured = f"{what} grew {growth / scale:.1f} {unit}"
    violations = (f"{measured} over {span:.0f} s ({note})",) if growth > limit else ()
    return Verdict(f"daemon {what} flat", len(points), violations, note)


def check(history: History, observed: Observed) -> tuple[list[Verdict], list[Timing]]:
    """Every invariant's verdict, and the detection/restore times of the bad deploys."""
    rolled_back, timings = bad_rolled_back(history, observed)
    verdicts = [
        rolled_back,
        no_false_rollback(history, observed),
        non_idempotent_once(observed),
        incidents_end(observed),
        records_agree(history, observed),
        no_leaks(observed),
        flat(observed, "rss", RSS_FLAT_BYTES),
        flat(observed, "fds", FDS_FLAT),
    ]
    return verdicts, timings


def table(verdicts: Sequence[Verdict]) -> str:
    """One row per invariant: name, checked, violations, note."""
    rows = [("invariant", "checked", "violations", "note")]
    rows += [(v.name, str(v.checked), str(len(v.violations)), v.note) for v in verdicts]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
