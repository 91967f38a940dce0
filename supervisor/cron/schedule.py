"""When a cron job is due: pure, the current time always passed in (aware UTC datetimes).

Expressions follow supercronic: 5 fields; 6 = the five and a YEAR; 7 = SECONDS,
the five, and a year. They are handed to croniter as seven fields with the
seconds first, so a sixth field is never read as seconds. What croniter lacks
is translated (`5L` -> `L5`) or implemented here (`LW`).

Clock changes follow Debian cron: in a repeated hour (autumn) a job with a
fixed minute and hour runs once, a job with `*` in its minute or hour field runs
in both; a time skipped by a spring-forward jump runs at the jump.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

UTC = timezone.utc
MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
FOLD_MARGIN = timedelta(hours=3)  # more than any UTC offset change (DST is 1 h, a few zones 2 h)


MAX_DURATION_SECONDS = 100 * 365 * 86400


class ScheduleError(ValueError):
    pass


def parse_duration(text: str) -> timedelta:
    """Go-style durations as supercronic and @every take them: 90s, 5m, 1h30m, 1.5h, 250ms."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    rest, total = text.strip(), 0.0
    if not rest:
        raise ScheduleError("empty duration")
    if rest.replace(".", "", 1).isdigit():
        total = float(rest)  # bare seconds
        rest = ""
    while rest:
        number = ""
        while rest and (rest[0].isdigit() or rest[0] == "."):
            number, rest = number + rest[0], rest[1:]
        unit = "ms" if rest.startswith("ms") else rest[:1]
        if not number or unit not in units or number.count(".") > 1 or number == ".":
            raise ScheduleError(f"bad duration {text[:40]!r} (use e.g. 30s, 5m, 1h30m)")
        total += float(number) * units[unit]
        rest = rest[len(unit):]
    if not 0 < total <= MAX_DURATION_SECONDS:  # also refuses inf (a 400-digit number) and nan
        raise ScheduleError(f"duration {text[:40]!r} must be above zero and at most 100 years")
    return timedelta(seconds=total)


def _last_weekday_of_month(day: date) -> bool:
    last = calendar.monthrange(day.year, day.month)[1]
    candidate = date(day.year, day.month, last)
    while candidate.weekday() >= 5:  # Saturday, Sunday
        candidate -= timedelta(days=1)
    return day == candidate


class CronSchedule:
    """A cron expression in a time zone."""

    def __init__(self, expression: str, tz: str | None = None) -> None:
        self.expression = expression
        self.zone = ZoneInfo(tz) if tz else None
        fields = MACROS.get(expression.strip().lower(), expression).split()
        if len(fields) == 5:
            fields = ["0", *fields, "*"]
        elif len(fields) == 6:
            fields = ["0", *fields]  # the sixth field is the year, as in supercronic
        elif len(fields) != 7:
            raise ScheduleError(f"{expression!r}: expected 5, 6 or 7 fields, found {len(fields)}")
        second, minute, hour, dom, month, dow, year = fields
        self._filter: Callable[[datetime], bool] | None = None
        if dom.upper() == "LW":
            if dow != "*":
                raise ScheduleError(f"{expression!r}: LW cannot be combined with a day of week")
            dom, self._filter = "26-31", lambda t: _last_weekday_of_month(t.date())
        if "W" in dom.upper() and ("," in dom or "-" in dom or "/" in dom):
            raise ScheduleError(f"{expression!r}: W takes a single day of the month")
        dow = ",".join(f"L{part[:-1]}" if part.upper().endswith("L") and part[:-1].isdigit() else part
                       for part in dow.split(","))
        self._fields = " ".join((second, minute, hour, dom, month, dow, year))
        # Debian cron: "wildcard" jobs are those whose minute or hour field is *.
        self.wildcard = minute.startswith("*") or hour.startswith("*")
        try:
            croniter(self._fields, datetime(2000, 1, 1), second_at_beginning=True)
        except (CroniterBadCronError, CroniterError, ValueError, KeyError) as exc:
            raise ScheduleError(f"{expression!r}: {exc}") from None

    def _instants(self, wall: datetime) -> list[datetime]:
        """The UTC instants a local wall time names: one, two (repeated hour) or the jump (skipped)."""
        if self.zone is None:
            return [wall.replace(tzinfo=UTC)]
        first = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        if first == second:
            return [first]
        if first < second:  # repeated: the wall time happens twice
            return [first, second] if self.wildcard else [first]
        return [self._jump(second, first, wall)]  # skipped: run when the clock jumps over it

    def _jump(self, low: datetime, high: datetime, wall: datetime) -> datetime:
        """The first instant whose local wall time is at or after `wall` (binary search, 1 s)."""
        assert self.zone is not None
        while high - low > timedelta(seconds=1):
            middle = low + (high - low) / 2
            if middle.astimezone(self.zone).replace(tzinfo=None) >= wall:
                high = middle
            else:
                low = middle
        return high.replace(microsecond=0)

    def next_after(self, after: datetime) -> datetime | None:
        """The first run strictly after `after` (aware), or None if it can never run again."""
        after = after.astimezone(UTC)
        local = after.astimezone(self.zone).replace(tzinfo=None) if self.zone else after.replace(tzinfo=None)
        start = local - FOLD_MARGIN if self.zone else local
        try:
            walls = croniter(self._fields, start, second_at_beginning=True)
            best: datetime | None = None
            best_wall: datetime | None = None
            while True:
                wall = walls.get_next(datetime)
                if best_wall is not None and wall > best_wall + 2 * FOLD_MARGIN:
                    return best
                if self._filter is not None and not self._filter(wall):
                    continue
                for instant in self._instants(wall):
                    if instant > after and (best is None or instant < best):
                        best, best_wall = instant, wall
                if best is not None and self.zone is None:
                    return best
        except CroniterBadDateError:
            return None  # e.g. a year in the past: never again


class EverySchedule:
    """@every DURATION: fixed steps from an anchor (pycrond's start), so they never drift."""

    def __init__(self, interval: timedelta, anchor: datetime, text: str = "") -> None:
        self.expression = f"@every {text or interval}"
        self.interval = interval
        self.anchor = anchor.astimezone(UTC)

    def next_after(self, after: datetime) -> datetime:
        steps = int((after.astimezone(UTC) - self.anchor) / self.interval) + 1
        return self.anchor + max(steps, 1) * self.interval


class RebootSchedule:
    """@reboot: once, when pycrond starts."""

    expression = "@reboot"

    def next_after(self, after: datetime) -> None:
        return None


Schedule = CronSchedule | EverySchedule | RebootSchedule
