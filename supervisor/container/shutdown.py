"""The container's end, asked for: who asked first, and the exit code it will leave with."""

from __future__ import annotations

import anyio

from ..logs.events import Logger
from ..s6 import layout as s6layout
from ..s6.layout import Layout


class Shutdown:
    """The first request wins; a bail or a failed stage fixes the exit code for good."""

    def __init__(self, layout: Layout, log: Logger) -> None:
        self.layout = layout
        self.log = log
        self.exit_code = 0
        self.exit_code_fixed = False  # by a bail or a failed stage (a later main program never changes the code)
        self.stopping = anyio.Event()
        self.reason = ""  # the first request's: the verdict's why (container/verdict)
        self.service = ""  # the essential service it ended for, if one did

    def request(self, reason: str, exit_code: int | None = None, service: str = "") -> None:
        if self.stopping.is_set():
            self.log.info("already shutting down", reason=reason)
            return
        self.reason = reason
        self.service = service
        if exit_code is not None:
            self.set_exit_code(exit_code)
            self.exit_code_fixed = True
        self.log.info("shutting down", reason=reason, exit_code=self.exit_code)
        self.stopping.set()

    def set_exit_code(self, code: int) -> None:
        """Also where s6-overlay keeps it, so a finish script may read it or set another (its recipe)."""
        self.exit_code = code
        s6layout.record_exit_code(self.layout, code)
