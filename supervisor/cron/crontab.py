"""Parse a crontab the way supercronic does: pure, with line numbers for every error.

`NAME=value` lines (quotes stripped) set the environment of every job of the
file, wherever they stand, the last value winning, as in supercronic: `SHELL`
picks the shell, `CRON_TZ` the time zone of the file's schedules (without it,
the local zone the caller passes in), and pys6's `PYCROND_TIMEOUT` (a duration)
a timeout for its jobs; `TZ` is only a variable of the jobs. A job line tries 7
fields, then 6, then 5, as supercronic does, and takes the first that parses;
@yearly-style macros too, and pys6's own @reboot and @every DURATION.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .schedule import CronSchedule, EverySchedule, RebootSchedule, Schedule, ScheduleError, parse_duration

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

    def log_fields(self, iteration: int | None = None) -> dict[str, object]:
        """supercronic's fields on a job's log lines."""
        fields: dict[str, object] = {"job.command": self.command, "job.position": self.position,
                                     "job.schedule": self.schedule_text}
        return fields if iteration is None else {"iteration": iteration, **fields}


@dataclass(frozen=True)
class BadLine:
    source: str
    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}: {self.text}"

    @property
    def supercronic_message(self) -> str:
        """What supercronic says of the first bad line, when it refuses the crontab."""
        return f"bad crontab line: '{self.text.lstrip(' ' + chr(9))}' (use -debug for details)"


def _unquote(value: str) -> str:
    if len(value) > 1 and value[0] in "\"'" and value[0] == value[-1]:
        return value[1:-1]
    return value


def _tokens(line: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"\S+", line)]


@dataclass(frozen=True)
class Notice:
    """What supercronic says about a variable line as it reads it (the shell, the zone, USER)."""

    level: str
    message: str


@dataclass
class ParsedCrontab:
    jobs: list[JobSpec] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)


def parse_job_line(line: str, zone: tzinfo, anchor: datetime) -> tuple[Schedule, str]:
    """The schedule and the command of one job line; ScheduleError says why not."""
    spans = _tokens(line)
    first = line[spans[0][0]:spans[0][1]]
    if first in ("@reboot", "@every"):  # pys6's own, beyond supercronic
        if first == "@reboot":
            schedule: Schedule = RebootSchedule()
            rest = 1
        else:
            if len(spans) < 2:
                raise ScheduleError("@every needs a duration")
            text = line[spans[1][0]:spans[1][1]]
            schedule = EverySchedule(parse_duration(text), anchor, text)
            rest = 2
        if len(spans) <= rest:
            raise ScheduleError("no command")
        return schedule, line[spans[rest][0]:]
    problems: dict[int, str] = {}
    for count in (*FIELD_COUNTS, 1):
        if len(spans) <= count:
            continue
        expression = line[: spans[count - 1][1]]
        try:
            return CronSchedule(expression, zone), line[spans[count][0]:]
        except ScheduleError as exc:
            problems[count] = str(exc)
    if first.startswith("@"):
        raise ScheduleError(f"unknown macro {first} (supercronic's are @yearly @annually @monthly @weekly @daily "
                            "@hourly, in lower case; pys6 adds @reboot and @every)")
    if len(spans) <= 5:
        raise ScheduleError("expected a schedule of 5, 6 or 7 fields and a command")
    raise ScheduleError(problems[5])  # the 5-field reading, the one most often meant, is the one explained


def zone_named(name: str, local: tzinfo) -> tzinfo:
    """CRON_TZ's value as Go's time.LoadLocation reads it: "" and UTC are UTC, Local the local zone."""
    if name in ("", "UTC"):
        return timezone.utc
    if name == "Local":
        return local
    return ZoneInfo(name)


def parse_crontab(text: str, source: str, anchor: datetime, first_position: int = 0,
                  local: tzinfo = timezone.utc) -> ParsedCrontab:
    """Every job of the crontab, every line that could not be read (never a silent skip), and the notices."""
    parsed = ParsedCrontab()
    environ: dict[str, str] = {}
    zone = local
    timeout: timedelta | None = None
    job_lines: list[tuple[int, str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.lstrip(" \t")
        if not line or line.startswith("#"):
            continue
        env = ENV_LINE.match(line)
        if not env:
            job_lines.append((number, raw, line))
            continue
        name, value = env.group(1), _unquote(env.group(2))
        if name == "CRON_TZ":
            try:
                zone = zone_named(value, local)
            except (ZoneInfoNotFoundError, ValueError):
                parsed.bad.append(BadLine(source, number, raw, f"unknown time zone {value!r}"))
                continue
            parsed.notices.append(Notice("info", f"processes will be spawned using TZ: {value or 'UTC'}"))
        elif name == "PYCROND_TIMEOUT":
            try:
                timeout = parse_duration(value) if value not in ("", "0") else None
            except ScheduleError as exc:
                parsed.bad.append(BadLine(source, number, raw, str(exc)))
                continue
        elif name == "SHELL":
            parsed.notices.append(Notice("info", f"processes will be spawned using shell: {value}"))
        elif name == "USER":
            parsed.notices.append(Notice("warning", f"processes will NOT be spawned as USER={value}"))
        environ[name] = value
    shell = environ.get("SHELL", "/bin/sh")
    for number, raw, line in job_lines:
        try:
            schedule, command = parse_job_line(line, zone, anchor)
        except ScheduleError as exc:
            parsed.bad.append(BadLine(source, number, raw, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 (a parser surprise: a bad line, never a dead pycrond)
            parsed.bad.append(BadLine(source, number, raw, f"cannot parse: {type(exc).__name__}: {str(exc)[:200]}"))
            continue
        position = first_position + len(parsed.jobs)
        parsed.jobs.append(JobSpec(source, number, position, schedule, command, shell, environ, timeout))
    parsed.bad.sort(key=lambda bad: bad.line)
    return parsed
