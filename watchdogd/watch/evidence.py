"""``wait_healthy``'s judge: is the restored release seen working, on evidence from after the
restore only?

Samples of the bad release, taken before the restore, say nothing about the restored one (a
rollback whose restore started nothing was once reported "healthy after 0.0 s"). So the judge
asks for, from ``since`` on:

* the runtime's health not unhealthy (a Docker HEALTHCHECK is always about the container
  that runs now, so it is fresh by construction), and
* at least ``min_samples`` samples from each probe (``http``, ``auth_flow``,
  ``container_health``) a gate uses, the newest one ok. When no gate uses a probe, every probe
  counts; a target without probes needs fresh data from each gated check instead.

With none of that (no probe, no gated check, no runtime health) there is no evidence, and the
answer stays "no opinion", which fails the step at its deadline.

It holds the recorders and the driver, never the controller, so the controller, its runner
and this judge form no reference cycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from watchdogd.errors import TargetError
from watchdogd.targets.base import TargetDriver
from watchdogd.watch.recorder import CheckRecorder

PROBE_TYPES = frozenset({"http", "auth_flow", "container_health"})


class RestoreEvidence:
    """Implements ``playbook.context.HealthCheck`` for one target."""

    def __init__(self, driver: TargetDriver) -> None:
        self._driver = driver
        self._recorders: Mapping[str, CheckRecorder] = {}
        self._gated: Sequence[str] = ()

    def use(self, recorders: Mapping[str, CheckRecorder], gated: Sequence[str]) -> None:
        """The target's checks after a (re)load, and the checks its gates read."""
        self._recorders = recorders
        self._gated = tuple(gated)

    def witnesses(self) -> list[CheckRecorder]:
        """The checks whose fresh samples the judgement needs (see the module docstring)."""
        probes = [r for r in self._recorders.values() if r.check_type in PROBE_TYPES]
        gated_probes = [r for r in probes if r.check in self._gated]
        if gated_probes:
            return gated_probes
        if probes:
            return probes
        return [self._recorders[name] for name in dict.fromkeys(self._gated)]

    async def __call__(self, since: float, min_samples: int) -> bool | None:
        try:
            runtime = await self._driver.healthy()
        except TargetError:
            return None
        if runtime is False:
            return False
        witnesses = self.witnesses()
        if not witnesses:
            return runtime  # True with a HEALTHCHECK that passes; None: nobody can tell
        verdicts = [recorder.fresh(since) for recorder in witnesses]
        if any(count and newest is False for count, newest in verdicts):
            return False
        if any(count < min_samples for count, _ in verdicts):
            return None
        return True


def seen_by_every_gate(recorders: Mapping[str, CheckRecorder], gated: Sequence[str]) -> bool:
    """A release earns known-good only once every gated check has seen it at least once: a
    bake that passes on no data would bless a release that never answered."""
    return all(recorders[check].samples_since_reset > 0 for check in gated)
