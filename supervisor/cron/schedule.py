"""When a cron job is due: pure, the current time always passed in (aware UTC datetimes).

Expressions are supercronic's (expression.py), read in the crontab's time zone:
CRON_TZ, else the local zone, as supercronic does. Clock changes follow Debian
cron, where supercronic runs a wildcard job once in a repeated hour and a skipped
time an hour late: in a repeated hour (autumn) a job with a fixed minute and
hour runs once, a job with `*` in its minute or hour field runs in both; a time
skipped by a spring-forward jump runs at the jump.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo

from .expression import ExpressionError, parse_expression

UTC = timezone.utc
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
    if rest.replace(".", "", 1).isdecimal():
        total = float(rest)  # bare seconds
        rest = ""
    while rest:
        number = ""
        while rest and (rest[0].isdecimal() or rest[0] == "."):
            number, rest = number + rest[0], rest[1:]
        unit = "ms" if rest.startswith("ms") else rest[:1]
        if not number or unit not in units or number.count(".") > 1 or number == ".":
            raise ScheduleError(f"bad duration {text[:40]!r} (use e.g. 30s, 5m, 1h30m)")
        total += float(number) * units[unit]
        rest = rest[len(unit):]
    if not 0 < total <= MAX_DURATION_SECONDS:  # also refuses inf (a 400-digit number) and nan
        raise ScheduleError(f"duration {text[:40]!r} must be above zero and at most 100 years")
    return timedelta(seconds=total)


class CronSchedule:
    """A cron expression in a time zone."""

    def __init__(self, expression: str, zone: tzinfo = UTC) -> None:
        self.expression = expression
        self.zone = zone
        try:
            self._walls = parse_expression(expression)
        except ExpressionError as exc:
            raise ScheduleError(str(exc)) from None
        minute, hour = (self._walls.minutes, self._walls.hours)
        # Debian cron: "wildcard" jobs are those whose minute or hour field is * (every value).
        self.wildcard = len(minute) == 60 or len(hour) == 24

    def _instants(self, wall: datetime) -> list[datetime]:
        """The UTC instants a local wall time names: one, two (repeated hour) or the jump (skipped)."""
        first = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        if first == second:
            return [first]
        if first < second:  # repeated: the wall time happens twice
            return [first, second] if self.wildcard else [first]
        return [self._jump(second, first, wall)]  # skipped: run when the clock jumps over it

    def _jump(self, low: datetime, high: datetime, wall: datetime) -> datetime:
        """The first instant whose local wall time is at or after `wall` (binary search, 1 s)."""
        while high - low > timedelta(seconds=1):
            middle = low + (high - low) / 2
            if middle.astimezone(self.zone).replace(tzinfo=None) >= wall:
                high = middle
            else:
                low = middle
        return high.replace(microsecond=0)

    def _steady(self, instant: datetime) -> bool:
        """No clock change within two margins of `instant`: wall times map to instants in order there."""
        before = (instant - 2 * FOLD_MARGIN).astimezone(self.zone).utcoffset()
        return before == (instant + 2 * FOLD_MARGIN).astimezone(self.zone).utcoffset()

    def next_after(self, after: datetime) -> datetime | None:
        """The first run strictly after `after` (aware), or None if it can never run again.

        Near a clock change a later wall time can be an earlier instant, so the walls
        from a margin before `after` to a margin past the best are all looked at;
        elsewhere the first wall after `after` is the answer.
        """
        after = after.astimezone(UTC)
        start = after.astimezone(self.zone).replace(tzinfo=None)
        wall: datetime | None = start if self._steady(after) else start - FOLD_MARGIN
        best: datetime | None = None
        best_wall: datetime | None = None
        while True:
            wall = self._walls.next_after(wall) if wall is not None else None
            if wall is None:
                return best
            if best is not None and best_wall is not None and (
                    wall > best_wall + 2 * FOLD_MARGIN or self._steady(best)):
                return best
            for instant in self._instants(wall):
                if instant > after and (best is None or instant < best):
                    best, best_wall = instant, wall


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
