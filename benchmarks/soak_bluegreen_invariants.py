"""The blue-green target's invariants: pure functions over plain values, like
``soak_invariants`` (unit tests: tests/benchmarks/test_soak_invariants.py).

What the soak did to the target is a list of :class:`BgAttempt` (each ``watchdogd deploy``
that started, with what kind of release it was); what watchdogd recorded is the deploy
journal (:class:`BgDeploy`, one per deploy, by the label of its image); what ran is sampled
(:class:`PairSample`) and counted per answer through HAProxy (``served``).

* ``bad releases never promoted``: a release the pre-checks must catch is never promoted and
  no user request reaches it; a release broken during its bake is switched back
  (``rolled_back``), or its bake is cut short by a restart (``aborted``, users back on blue:
  docs/blue-green.md, "After a crash"); none is promoted. Its incident, detection and restore
  times are judged with the other targets' (``soak_invariants.bad_rolled_back``).
* ``good releases promoted``: a good release is promoted, unless the daemon or the engine was
  away during its deploy (a crash cuts the bake short: users go back to blue).
* ``one release outside a deploy``: two of the app's containers never run for longer than
  ``PAIR_GRACE`` while no deploy is open, and at the end one container is left.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from soak_invariants import Outage, Verdict, downtime

PAIR_GRACE = 10.0  # a promotion stops blue, a switch back removes green: both take seconds
CUT_SHORT = frozenset({"aborted", "rolled_back", "failed"})


@dataclass(frozen=True)
class BgAttempt:
    """A deploy the soak started: ``kind`` is ``good``, ``pre-check`` (bad, caught before
    users) or ``traffic`` (good image, broken by the soak during its bake)."""

    at: float
    label: str
    kind: str


@dataclass(frozen=True)
class BgDeploy:
    """A deploy as watchdogd journaled it."""

    label: str
    stage: str
    started_at: float
    ended_at: float | None
    reason: str = ""


@dataclass(frozen=True)
class PairSample:
    at: float
    running: tuple[str, ...]  # the app's running containers
    deploy_open: bool


@dataclass
class BgObserved:
    deploys: list[BgDeploy] = field(default_factory=list)
    pairs: list[PairSample] = field(default_factory=list)
    served: Counter[str] = field(default_factory=Counter)  # answers through HAProxy per label
    left: list[str] = field(default_factory=list)  # the app's containers at the end
    broken: set[str] = field(default_factory=set)  # labels the soak broke during their bake


def _record(observed: BgObserved, label: str) -> BgDeploy | None:
    return next((d for d in observed.deploys if d.label == label), None)


def _away(outages: Sequence[Outage], record: BgDeploy) -> bool:
    """Whether the daemon or the engine was away during the deploy."""
    end = record.ended_at if record.ended_at is not None else float("inf")
    return downtime([o for o in outages if o.what != "haproxy"], record.started_at, end) > 0


def bad_never_promoted(
    attempts: Sequence[BgAttempt], outages: Sequence[Outage], observed: BgObserved
) -> Verdict:
    violations = []
    bad = [a for a in attempts if a.kind != "good"]
    cut = 0
    for attempt in bad:
        record = _record(observed, attempt.label)
        if record is None:
            violations.append(f"{attempt.label}: no deploy in the journal")
            continue
        if record.ended_at is None:
            violations.append(f"{attempt.label}: deploy still {record.stage}")
        elif record.stage == "promoted":
            violations.append(f"{attempt.label} ({attempt.kind}) was promoted")
        if attempt.kind == "pre-check" and observed.served[attempt.label]:
            violations.append(
                f"{attempt.label} served {observed.served[attempt.label]} user requests "
                "though its pre-checks must fail"
            )
        if attempt.kind == "traffic" and attempt.label in observed.broken:
            if record.stage == "aborted" and _away(outages, record):
                cut += 1
            elif record.stage != "rolled_back":
                violations.append(
                    f"{attempt.label} broke in its bake and ended {record.stage}: {record.reason}"
                )
    note = f"{cut} bake(s) cut short by a restart" if cut else ""
    return Verdict("blue-green: no bad release promoted", len(bad), tuple(violations), note)


def good_promoted(
    attempts: Sequence[BgAttempt], outages: Sequence[Outage], observed: BgObserved
) -> Verdict:
    violations = []
    good = [a for a in attempts if a.kind == "good"]
    cut = 0
    for attempt in good:
        record = _record(observed, attempt.label)
        if record is None:
            violations.append(f"{attempt.label}: no deploy in the journal")
        elif record.stage == "promoted":
            continue
        elif record.stage in CUT_SHORT and _away(outages, record):
            cut += 1
        else:
            violations.append(f"good {attempt.label} ended {record.stage}: {record.reason}")
    note = f"{cut} cut short by a restart" if cut else ""
    return Verdict("blue-green: good releases promoted", len(good), tuple(violations), note)


def one_release_outside_deploys(observed: BgObserved) -> Verdict:
    violations = []
    since: PairSample | None = None
    for sample in sorted(observed.pairs, key=lambda s: s.at):
        if len(sample.running) > 1 and not sample.deploy_open:
            since = since or sample
            if sample.at - since.at > PAIR_GRACE:
                violations.append(
                    f"{', '.join(sample.running)} running with no open deploy "
                    f"for {sample.at - since.at:.0f} s"
                )
                since = None  # one line per episode
        else:
            since = None
    if len(observed.left) != 1:
        violations.append(f"at the end the app's containers are {observed.left}")
    checked = sum(1 for s in observed.pairs if len(s.running) > 1) + 1
    return Verdict("blue-green: two releases only during a deploy", checked, tuple(violations))


def check_bluegreen(
    attempts: Sequence[BgAttempt], outages: Sequence[Outage], observed: BgObserved
) -> list[Verdict]:
    return [
        bad_never_promoted(attempts, outages, observed),
        good_promoted(attempts, outages, observed),
        one_release_outside_deploys(observed),
    ]
