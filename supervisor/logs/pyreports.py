"""What Python itself would print to stderr, made events of our own logger instead.

CPython and asyncio report some problems by writing raw, multi-line text to
stderr: an exception ignored in a __del__ or a callback (sys.unraisablehook),
a thread's uncaught exception (threading.excepthook), a warning
(warnings.showwarning), asyncio's "Task exception was never retrieved" (the
loop's exception handler) and whatever goes to the logging module (its last
resort handler). On PID 1's stderr that text would break PYS6_LOG_FORMAT=json
and pass for a service's line; here each is one event (`[pyinit] ...` or a
JSON object), its traceback a field.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import traceback
import warnings
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from .events import Logger

TRACEBACK_LIMIT = 4000  # characters of a traceback kept in the event: the end says where


def _formatted(kind: type[BaseException] | None, error: BaseException | None,
               trace: TracebackType | None) -> str:
    if kind is None:
        return ""
    return "".join(traceback.format_exception(kind, error, trace))[-TRACEBACK_LIMIT:]


class _ToLogger(logging.Handler):
    def __init__(self, logger: Logger) -> None:
        super().__init__(logging.WARNING)
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, object] = {"logger": record.name}
            if record.exc_info:
                fields["traceback"] = _formatted(*record.exc_info)
            method = "error" if record.levelno >= logging.ERROR else "warning"
            getattr(self._logger, method)(f"python: {record.getMessage()}", **fields)
        except Exception:  # noqa: BLE001 (a report must never raise into what it reports on)
            pass


def route_python_reports(logger: Logger) -> None:
    """Make Python's own reports events of `logger`, for this process (call it once the logger is set)."""

    def unraisable(report: sys.UnraisableHookArgs) -> None:
        try:
            where = repr(report.object) if report.object is not None else ""
            logger.error(f"python: {report.err_msg or 'exception ignored'}", object=where[:200],
                         traceback=_formatted(report.exc_type, report.exc_value, report.exc_traceback))
        except Exception:  # noqa: BLE001
            pass

    def thread_failed(report: threading.ExceptHookArgs) -> None:
        try:
            logger.error("python: a thread failed", thread=report.thread.name if report.thread else "",
                         traceback=_formatted(report.exc_type, report.exc_value, report.exc_traceback))
        except Exception:  # noqa: BLE001
            pass

    def warned(message: Warning | str, category: type[Warning], filename: str, lineno: int,
               file: TextIO | None = None, line: str | None = None) -> None:
        try:
            logger.warning(f"python: {category.__name__}: {message}", file=filename, line=lineno)
        except Exception:  # noqa: BLE001
            pass

    sys.unraisablehook = unraisable
    threading.excepthook = thread_failed
    warnings.showwarning = warned
    root = logging.getLogger()
    root.handlers = [_ToLogger(logger)]
    root.setLevel(logging.WARNING)
    logging.lastResort = None


def route_loop_reports(logger: Logger) -> None:
    """The running loop's exception handler (asyncio's default one logs multi-line text) as events."""

    def loop_failed(_loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        try:
            error = context.get("exception")
            fields: dict[str, object] = {}
            if isinstance(error, BaseException):
                fields["traceback"] = _formatted(type(error), error, error.__traceback__)
            for key in ("task", "future", "handle"):
                if key in context:
                    fields[key] = repr(context[key])[:200]
            logger.error(f"python: {context.get('message') or 'event loop error'}", **fields)
        except Exception:  # noqa: BLE001
            pass

    asyncio.get_running_loop().set_exception_handler(loop_failed)
