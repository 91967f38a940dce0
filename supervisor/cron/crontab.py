"""Parse a crontab the way supercronic does: pure, with line numbers for every error.

Environment lines (`NAME=value`, quotes stripped) apply to the job lines below
them. `SHELL` picks the shell, `CRON_TZ` or `TZ` the time zone of the schedules
below, and pys6's `PYCROND_TIMEOUT` (a duration) a timeout for the jobs below.
A job line tries 7 fields, then 6, then 5, as supercronic does, and takes the
first that parses; `@yearly`-style macros, `@reboot` and `@every DURATION` too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .schedule import MACROS, CronSchedule, EverySchedule, RebootSchedule, Schedule, ScheduleError, parse_duration

ENV_LINE = re.compile(r"^([^\s=]+)\s*=\s*(.*)$")
FIELD_COUNTS = (7, 6, 5)


@dataclass(frozen=True)
class JobSpec:
    source: str  # the crontab file
    line: int  # its line number there
    position: int  # its index among all jobs (supercronic's "position" label)
    schedule: Schedule
    command: str
    shell: str = "/bin/sh"
    environ: dict[str, str] = field(default_factory=dict)
    timeout: timedelta | None = None

    @property
    def schedule_text(self) -> str:
        return self.schedule.expression


@dataclass(frozen=True)
class BadLine:
    source: str
    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}: {self.text}"


def _unquote(value: str) -> str:
    if len(value) > 1 and value[0] in "\"'" and value[0] == value[-1]:
        return value[1:-1]
    return value


def _tokens(line: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"\S+", line)]


def parse_job_line(line: str, tz: str | None, anchor: datetime) -> tuple[Schedule, str]:
    """The schedule and the command of one job line; ScheduleError says why not."""
    spans = _tokens(line)
    first = line[spans[0][0]:spans[0][1]].lower()
    if first.startswith("@"):
        if first == "@reboot":
            schedule: Schedule = RebootSchedule()
            rest = 1
        elif first == "@every":
            if len(spans) < 2:
                raise ScheduleError("@every needs a duration")
            text = line[spans[1][0]:spans[1][1]]
            schedule = EverySchedule(parse_duration(text), anchor, text)
            rest = 2
        elif first in MACROS:
            schedule, rest = CronSchedule(first, tz), 1
        else:
            raise ScheduleError(f"unknown macro {first}")
        if len(spans) <= rest:
            raise ScheduleError("no command")
        return schedule, line[spans[rest][0]:]
    problems = []
    for count in FIELD_COUNTS:
        if len(spans) <= count:
            continue
        expression = line[: spans[count - 1][1]]
        try:
            return CronSchedule(expression, tz), line[spans[count][0]:]
        except ScheduleError as exc:
            problems.append(str(exc))
    if len(spans) <= 5:
        raise ScheduleError("expected a schedule of 5, 6 or 7 fields and a command")
    raise ScheduleError(problems[-1] if problems else "bad schedule")


def parse_crontab(text: str, source: str, anchor: datetime, first_position: int = 0) -> tuple[list[JobSpec], list[BadLine]]:
    """Every job of the crontab, and every line that could not be read (never a silent skip)."""
    jobs: list[JobSpec] = []
    bad: list[BadLine] = []
    environ: dict[str, str] = {}
    shell = "/bin/sh"
    tz: str | None = None
    timeout: timedelta | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.lstrip(" \t")
        if not line or line.startswith("#"):
            continue
        env = ENV_LINE.match(line)
        if env:
            name, value = env.group(1), _unquote(env.group(2).rstrip())
            if name in ("CRON_TZ", "TZ"):
                try:
                    ZoneInfo(value)
                except (ZoneInfoNotFoundError, ValueError):
                    bad.append(BadLine(source, number, raw, f"unknown time zone {value!r}"))
                    continue
                tz = value
            elif name == "PYCROND_TIMEOUT":
                try:
                    timeout = parse_duration(value) if value not in ("", "0") else None
                except ScheduleError as exc:
                    bad.append(BadLine(source, number, raw, str(exc)))
                    continue
            elif name == "SHELL":
                shell = value
            environ = {**environ, name: value}
            continue
        try:
            schedule, command = parse_job_line(line.rstrip(), tz, anchor)
        except ScheduleError as exc:
            bad.append(BadLine(source, number, raw, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 (croniter's own surprises: a bad line, never a dead pycrond)
            bad.append(BadLine(source, number, raw, f"cannot parse: {type(exc).__name__}: {str(exc)[:200]}"))
            continue
        jobs.append(JobSpec(source, number, first_position + len(jobs), schedule, command, shell, environ, timeout))
    return jobs, bad
