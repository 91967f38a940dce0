"""The environment each process pyinit starts gets, by S6_KEEP_ENV.

- unset (pys6's default): the container environment as the container_environment
  directory holds it at that moment (PATH kept if removed), so what a cont-init script
  adds or removes there reaches every later script, service and the main program,
  with-contenv or not; what could not be exec'd or is too large there is left out (see
  contenv), each left-out entry warned about once, so every start still succeeds;
- S6_KEEP_ENV=1 (or more): pyinit's own environment, unchanged (with-contenv is a no-op);
- S6_KEEP_ENV=0: s6-overlay v3's minimal environment, PATH only; `with-contenv` restores
  the container's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from .contenv import LeftOut, applied, is_variable_name

if TYPE_CHECKING:
    from ..logs.events import Logger

MAX_WARNED = 4096  # left-out entries remembered as warned about; past it the record starts afresh


class ChildEnvironment:
    """Call it for the environment of the next process started.

    In pys6's default the directory is read again only when `changed()` says something
    there changed since the last read (inotify: one non-blocking read per start, not one
    read per variable); without `changed`, every time.
    """

    def __init__(self, keep_env: int | None, original: dict[bytes, bytes], directory: str, log: Logger,
                 changed: Callable[[], bool] | None = None) -> None:
        self.keep_env = keep_env
        self._changed = changed
        self._cached: dict[bytes, bytes] | None = None
        self.original = original
        self.directory = directory
        self._log = log
        self._complained = False
        self._warned: set[tuple[str, str, int, int]] = set()  # LeftOut.version(): a new version is warned about again
        # The directory is the whole environment, so a variable a script removed is gone; only
        # what no file can hold comes from pyinit's own, and PATH if a script removed it.
        self.unwritable = {name: value for name, value in original.items() if not is_variable_name(name)}
        if b"PATH" in original:
            self.unwritable.setdefault(b"PATH", original[b"PATH"])

    def __call__(self) -> dict[bytes, bytes]:
        if self.keep_env is not None and self.keep_env > 0:
            return self.original
        if self.keep_env == 0:
            return {b"PATH": self.original.get(b"PATH", os.defpath.encode())}
        if self._cached is not None and self._changed is not None and not self._changed():
            return self._cached
        try:
            reading = applied(self.unwritable, self.directory)
        except OSError as exc:
            if not self._complained:
                self._log.warning("container environment unreadable, using pyinit's own",
                                  directory=self.directory, reason=exc.strerror)
                self._complained = True
            return self.original
        self._warn_left_out(reading.left_out, reading.left_out_count)
        self._cached = reading.environment
        return reading.environment

    def _warn_left_out(self, left_out: list[LeftOut], count: int) -> None:
        """One warning per reason, naming the entries not warned about before."""
        new = [entry for entry in left_out if entry.version() not in self._warned]
        if not new:
            return
        if len(self._warned) + len(new) > MAX_WARNED:
            self._warned.clear()
        self._warned.update(entry.version() for entry in new)
        by_reason: dict[str, list[str]] = {}
        for entry in new:
            by_reason.setdefault(entry.reason, []).append(entry.name)
        for reason, names in by_reason.items():
            self._log.warning("container environment entries left out", directory=self.directory,
                              reason=reason, entries=", ".join(names)[:500],
                              **({"left_out_in_all": count} if count > len(left_out) else {}))
