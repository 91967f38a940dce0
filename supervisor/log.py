"""structlog set-up for the supervisor's own events.

Text: `[pyinit] service died service=cron exitcode=1 level=warning`.
JSON (PYS6_LOG_FORMAT=json): one object per line with source, level, event and fields.
Until the output writer runs (start-up errors) events go straight to stderr.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

from .output import write_all

# S6_VERBOSITY: 0 errors only, 1 warnings, 2 (default) info, 3 and up debug.
VERBOSITY_FLOOR = {0: 40, 1: 30, 2: 20}

Sink = Callable[[bytes], None]


def _stderr_sink(data: bytes) -> None:
    write_all(2, data)


class _Router:
    """Where rendered events go (swapped to the output writer once it runs), and whose they are."""

    sink: Sink = _stderr_sink
    source: str = "pyinit"


ROUTER = _Router()


class SinkLogger:
    def msg(self, message: str) -> None:
        ROUTER.sink(message.encode("utf-8", "backslashreplace") + b"\n")

    debug = info = warning = error = critical = msg


def _quote(value: object) -> str:
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
    text = str(value)
    if text == "" or any(c in text for c in ' ="\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


def render_text(_logger: object, method: str, event: MutableMapping[str, Any]) -> str:
    message = event.pop("event", "")
    parts = [f"[{ROUTER.source}] {message}"]
    parts += [f"{key}={_quote(value)}" for key, value in event.items()]
    if method not in ("info", "debug"):
        parts.append(f"level={method}")
    return " ".join(parts)


def render_json(_logger: object, method: str, event: MutableMapping[str, Any]) -> str:
    record = {"source": ROUTER.source, "level": method, "time": round(time.time(), 3)}
    record.update(event)
    return json.dumps(record, default=str, ensure_ascii=False)


def configure(log_format: str = "text", verbosity: int = 2, source: str = "pyinit") -> None:
    floor = VERBOSITY_FLOOR.get(verbosity, 10)
    ROUTER.source = source
    structlog.configure(
        processors=[render_json if log_format == "json" else render_text],
        wrapper_class=structlog.make_filtering_bound_logger(floor),
        logger_factory=lambda *args: SinkLogger(),
        cache_logger_on_first_use=True,
    )


def route_to(sink: Sink) -> None:
    ROUTER.sink = sink


def route_to_stderr() -> None:
    ROUTER.sink = _stderr_sink


def get() -> Any:
    return structlog.get_logger()

