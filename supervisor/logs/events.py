"""structlog set-up for the supervisor's own events.

Text: `[pyinit] service died service=cron exitcode=1 level=warning time=2026-12-07T19:57:09.123Z`
(the time, in UTC to the millisecond, last, so a line still reads `[pyinit] EVENT key=value...`;
PYS6_LOG_TIMESTAMPS=0 leaves it out, for a log collector that stamps lines itself).
JSON (PYS6_LOG_FORMAT=json): one object per line with source, level, event and fields.
Until the output writer runs (start-up errors) events go straight to stderr.

structlog costs some 35 ms to import (its package pulls in asyncio and ssl), more than
pyinit's whole start path. pyinit calls `configure_early` first: until `configure` has
imported structlog, `get()` gives an `EarlyLogger` that records each event (level, event,
fields, time) in order; `configure` replays them through structlog, each with the time it
was logged (TIME_KEY, which the renderers read instead of the clock), before anything else
is written, so no line is lost, reordered or rendered by anything but structlog.
"""

from __future__ import annotations

import time

# Neither typing nor json (nor re, which both bring) is imported on pyinit's start path: events
# are only recorded there; json and the line module come with the first rendering.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio  # imported where a burst is first logged: most processes never log one
    from collections.abc import Callable

    from structlog.typing import EventDict, FilteringBoundLogger

    Sink = Callable[[bytes], None]

# S6_VERBOSITY: 0 errors only, 1 warnings, 2 (default) info, 3 and up debug.
VERBOSITY_FLOOR = {0: 40, 1: 30, 2: 20}
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
TIME_KEY = "_pys6_logged_at"  # a replayed event's time of logging (renderers pop it)


def _stderr_sink(data: bytes) -> None:
    from .writer import write_all  # here: the writer's module loads anyio, which the start path does without

    write_all(2, data)


class _Router:
    """Where rendered events go (swapped to the output writer once it runs), and whose they are.

    Debug and info events go to `info_sink`, the rest to `sink`: the same place,
    unless pycrond splits them between stdout and stderr (supercronic's -split-logs).
    """

    def __init__(self) -> None:  # set on the instance: a function stored on the class would be bound
        self.sink: Sink = _stderr_sink
        self.info_sink: Sink = _stderr_sink
        self.source = "pyinit"
        self.timestamps = False  # text lines end in time=...: pyinit's with PYS6_LOG_TIMESTAMPS (on by default)


ROUTER = _Router()


class SinkLogger:
    def msg(self, message: str) -> None:
        ROUTER.sink(message.encode("utf-8", "backslashreplace") + b"\n")

    def info(self, message: str) -> None:
        ROUTER.info_sink(message.encode("utf-8", "backslashreplace") + b"\n")

    debug = info
    warning = error = critical = msg


def _quote(value: object) -> str:
    import json

    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))
    text = str(value)
    if text == "" or any(c in text for c in ' ="\n\t'):
        return json.dumps(text, ensure_ascii=False)
    return text


def timestamp(when: float) -> str:
    """ISO 8601 in UTC to the millisecond: 2026-12-07T19:57:09.123Z (pysvstat --timestamps writes the same)."""
    seconds = int(when)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((when - seconds) * 1000):03d}Z"


def _logged_at(event: EventDict) -> float:
    when = event.pop(TIME_KEY, None)
    return when if isinstance(when, float) else time.time()


def render_text(_logger: object, method: str, event: EventDict) -> str:
    when = _logged_at(event)
    message = event.pop("event", "")
    parts = [f"[{ROUTER.source}] {message}"]
    parts += [f"{key}={_quote(value)}" for key, value in event.items()]
    if method not in ("info", "debug"):
        parts.append(f"level={method}")
    if ROUTER.timestamps:
        parts.append(f"time={timestamp(when)}")
    text = " ".join(parts)
    from .lines import displayable

    # A value (a client's message, a file's content) must not forge another line on a terminal.
    return displayable(text.encode("utf-8", "backslashreplace")).decode("utf-8", "backslashreplace")


def render_json(_logger: object, method: str, event: EventDict) -> str:
    import json

    record = {"source": ROUTER.source, "level": method, "time": round(_logged_at(event), 3)}
    record.update(event)
    return json.dumps(record, default=str, ensure_ascii=False)


if TYPE_CHECKING:
    Renderer = Callable[[object, str, EventDict], str]  # structlog's processor: its event dict holds any value
# What every module that logs is given: structlog's own protocol for a filtering bound logger
# (info, warning, error... with keyword fields), so the joints between modules say what they pass.
if TYPE_CHECKING:
    Logger = FilteringBoundLogger
else:
    Logger = object  # at run time only a name: structlog is not imported for it


class Recorder:
    """A logger that keeps each event (level, event, fields, time), in order, to be said later:
    `replay` gives them to a logger, each with the time it was logged (TIME_KEY)."""

    def __init__(self) -> None:
        self.recorded: list[tuple[str, str, dict[str, object], float]] = []

    def _log(self, method: str, event: str, fields: dict[str, object]) -> None:
        self.recorded.append((method, event, fields, time.time()))

    def replay(self, logger: Logger) -> None:
        for method, event, fields, when in self.recorded:
            getattr(logger, method)(event, **{TIME_KEY: when, **fields})
        self.recorded.clear()

    def debug(self, event: str, **fields: object) -> None:
        self._log("debug", event, fields)

    def info(self, event: str, **fields: object) -> None:
        self._log("info", event, fields)

    def warning(self, event: str, **fields: object) -> None:
        self._log("warning", event, fields)

    def error(self, event: str, **fields: object) -> None:
        self._log("error", event, fields)

    def critical(self, event: str, **fields: object) -> None:
        self._log("critical", event, fields)

    def as_logger(self) -> Logger:
        """Itself, given where a Logger is taken: it has the methods pyinit calls, with their signatures."""
        return self  # type: ignore[return-value]


class EarlyLogger(Recorder):
    """pyinit's logger before structlog is imported: each event at or above the verbosity floor
    is recorded, in order, with its time; once structlog is configured, it forwards."""

    def __init__(self, log_format: str, verbosity: int, timestamps: bool) -> None:
        super().__init__()
        self.settings = (log_format, verbosity, timestamps)  # configure's, for flush_early
        self.floor = VERBOSITY_FLOOR.get(verbosity, 10)
        self.real: Logger | None = None

    def _log(self, method: str, event: str, fields: dict[str, object]) -> None:
        if self.real is not None:
            getattr(self.real, method)(event, **fields)
        elif LEVELS[method] >= self.floor:
            self.recorded.append((method, event, fields, time.time()))


_early: EarlyLogger | None = None
_configured = False


def configure_early(log_format: str = "text", verbosity: int = 2, timestamps: bool = False) -> None:
    """pyinit's start: record events until `configure` (same arguments) imports structlog."""
    global _early
    _early = EarlyLogger(log_format, verbosity, timestamps)


def configure(log_format: str = "text", verbosity: int = 2, source: str = "pyinit",
              renderer: Renderer | None = None, timestamps: bool = False) -> None:
    """`timestamps`: text lines end in time=... (JSON records always carry their "time").
    Events recorded since `configure_early` are rendered now, in order, each with its own time."""
    global _configured
    import structlog

    floor = VERBOSITY_FLOOR.get(verbosity, 10)
    ROUTER.source = source
    ROUTER.timestamps = timestamps
    structlog.configure(
        processors=[renderer or (render_json if log_format == "json" else render_text)],
        wrapper_class=structlog.make_filtering_bound_logger(floor),
        logger_factory=lambda *args: SinkLogger(),
        cache_logger_on_first_use=True,
    )
    _configured = True
    if _early is not None and _early.real is None:
        real: Logger = structlog.get_logger()
        _early.replay(real)
        _early.real = real


def flush_early() -> None:
    """Before an exit that never got to `configure` (a refused configuration): the recorded events
    still go out, through structlog, as configured early."""
    if _early is not None and _early.real is None and _early.recorded:
        log_format, verbosity, timestamps = _early.settings
        configure(log_format, verbosity, timestamps=timestamps)


def route_to(sink: Sink, info_sink: Sink | None = None) -> None:
    ROUTER.sink = sink
    ROUTER.info_sink = info_sink or sink


def route_to_stderr_if_room() -> None:
    """After the output writer stops: a wedged stderr must not hold up the exit."""
    from .writer import write_if_room

    ROUTER.sink = ROUTER.info_sink = lambda data: None if write_if_room(2, data) else None


def get() -> Logger:
    if _early is not None and not _configured:
        return _early.as_logger()
    import structlog

    logger: Logger = structlog.get_logger()
    return logger



class BurstLog:
    """Log the first of a burst of like events; count the rest and report them once the burst is over.

    A flood of refused peers or of connections over the cap costs one line per
    burst, not one per connection. The summary is a one-shot loop timer armed
    only while a burst lasts, so an idle supervisor still never wakes up.
    """

    def __init__(self, logger: Logger, event: str, level: str = "warning", quiet: float = 1.0) -> None:
        self._emit = getattr(logger, level)
        self.event = event
        self.quiet = quiet
        self._last = -1e18
        self._suppressed = 0
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, **fields: object) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        now = loop.time()
        if now - self._last >= self.quiet and self._suppressed == 0:
            self._emit(self.event, **fields)
        else:
            self._suppressed += 1
            if self._timer is None:
                self._timer = loop.call_later(self.quiet, self._burst_over)
        self._last = now

    def _burst_over(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        remaining = self._last + self.quiet - loop.time()
        if remaining > 0:
            self._timer = loop.call_later(remaining, self._burst_over)
            return
        self._timer = None
        count, self._suppressed = self._suppressed, 0
        if count:
            self._emit(f"{self.event} (burst)", more=count)
