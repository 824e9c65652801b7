"""What a target runs, as its controller knows it: the one owner of the target's ``current``.

Two sources tell it, each for its own reason; everyone else asks ``release``:

* the driver, at each poll (``seen``): the truth, but the controller does not poll while a
  playbook changes the target;
* a playbook (``playbook_says``): the release it restored when it ends, or, when a crash
  interrupted it, the bad release it was started against (the next poll after it corrects
  whatever that guess gets wrong).
"""

from __future__ import annotations

from watchdogd.model import Release


class RunningRelease:
    def __init__(self) -> None:
        self._release: Release | None = None

    @property
    def release(self) -> Release | None:
        return self._release

    def seen(self, release: Release) -> bool:
        """The driver reports ``release``; True when it is another release than the one known
        (or the first one known), which then becomes ``release``."""
        if self._release is not None and release.id == self._release.id:
            return False
        self._release = release
        return True

    def playbook_says(self, release: Release | None) -> None:
        self._release = release
