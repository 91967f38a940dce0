"""pycrond's one-line word on its crontab, for pysvstat's status line (--status-file, pycrond's addition).

A crontab line pycrond refuses is logged, and the log is where an operator on
SSH does not look: `pysvstat cron` said "up, ready" over a crontab half of
which was refused. With --status-file PATH, pycrond keeps in PATH one line
saying what is wrong with the crontab right now (`crontab: 2 lines refused
(see pycrond -test ~/.crontab)`), and an empty file when nothing is. The
pod's run script points it at `status-note` in the service's directory,
which pyinit shows after the service's state (supervisor/core/statusnote.py).

The file is rewritten whole under a fresh name and renamed into place (a
reader never sees half a line), only when what it says changes, and always
once at start, so its time says it is this run's. It is kept short: a path
in it is cut. A file that cannot be written is said once in the log and
never stops pycrond.
"""

from __future__ import annotations

import os

from ..base import files
from ..base.terms import cut
from ..logs.events import Logger

MAX_PATH = 80


def lines(count: int) -> str:
    return f"{count} line{'' if count == 1 else 's'}"


def jobs(count: int) -> str:
    return f"{count} job{'' if count == 1 else 's'}"


def shown_path(path: str) -> str:
    """The crontab's path as a person types it: ~ for the home, cut when long."""
    home = os.path.expanduser("~")
    if home not in ("", "/", "~") and (path == home or path.startswith(home.rstrip("/") + "/")):
        path = "~" + path[len(home.rstrip("/")):]
    return path if len(path) <= MAX_PATH else "..." + path[-(MAX_PATH - 3):]


def refused_at_start(bad: int, path: str) -> str:
    """Bad lines at start under --keep-going: the good ones run."""
    return f"crontab: {lines(bad)} refused (see pycrond -test {shown_path(path)})"


def edit_refused(bad: int, kept: int, path: str) -> str:
    """A later edit with bad lines: none of it applies, the jobs of before go on."""
    return f"crontab: edit refused, {lines(bad)} bad, the previous {jobs(kept)} kept (see pycrond -test {shown_path(path)})"


def unreadable(reason: str, kept: int) -> str:
    return f"crontab: unreadable ({reason}), {jobs(kept)} kept"


def missing(path: str) -> str:
    return f"crontab: none yet, waiting for {shown_path(path)}"


class StatusFile:
    """The --status-file: `say` what is wrong now ("" when nothing is)."""

    def __init__(self, path: str | None, log: Logger) -> None:
        self.path = path
        self.log = log
        self._said: str | None = None  # None: nothing written yet by this run
        self._failed = False

    def say(self, text: str) -> None:
        # cut, and a path's undecodable bytes (surrogates) escaped: compared as it is written
        text = cut(text).encode("utf-8", "backslashreplace").decode("utf-8")
        if self.path is None or text == self._said:
            return
        try:
            files.write_atomically(self.path, text + "\n" if text else "", ".pycrond-status-")
        except OSError as exc:
            if not self._failed:  # once: a read-only directory would say it at every edit
                self.log.warning("cannot write the status file", path=self.path, reason=exc.strerror or str(exc))
                self._failed = True
            return
        self._failed = False
        self._said = text
