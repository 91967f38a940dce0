"""supercronic's cron expressions: what its cronexpr package accepts, and the wall times they name. Pure.

Five fields (minute hour day-of-month month day-of-week), six (and a year,
1970-2099) or seven (seconds first). Each field is a list of `*` or `?`, a value,
a range `a-b`, or either with a step (`*/n`, `a/n`, `a-b/n`); months and days
take names, short or full (`jan`, `january`, `fri`, `friday`), in any case; the
day of the month also takes `L`, `LW` and `15W`, the day of the week `5L` (the
last Friday) and `5#3` (the third). A step must be from 1 to the field's
largest value (`*/60` is refused in minutes); a range must not run backwards
(`6-5`, and `5-7` in days of the week, where 7 is Sunday, 0). The macros are
@yearly, @annually, @monthly, @weekly, @daily and @hourly, in lower case.
When both day fields are restricted a day matching either runs, as in cron.

One deliberate difference: a zero-padded day of the week (`01`) is the day it
names; supercronic's table reads it as Sunday.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

MACROS = {
    "@yearly": "0 0 0 1 1 * *", "@annually": "0 0 0 1 1 * *", "@monthly": "0 0 0 1 * * *",
    "@weekly": "0 0 0 * * 0 *", "@daily": "0 0 0 * * * *", "@hourly": "0 0 * * * * *",
}
_MACRO_PATTERN = re.compile("|".join(re.escape(name) for name in sorted(MACROS, key=len, reverse=True)))
MONTH_NAMES = {name: number for number, name in enumerate(calendar.month_name) if name} | {
    name: number for number, name in enumerate(calendar.month_abbr) if name}
DAY_NAMES = {"sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6}
DAY_NAMES |= {name[:3]: number for name, number in list(DAY_NAMES.items())}


class ExpressionError(ValueError):
    pass


@dataclass(frozen=True)
class FieldKind:
    name: str
    low: int
    high: int
    value: str  # the spellings of one value, a regular expression
    names: Mapping[str, int] = field(default_factory=dict)

    def number(self, token: str) -> int:
        if token in self.names:
            return self.names[token]
        return int(token) % 7 if self.name == "day-of-week" else int(token)


def _names(names: Mapping[str, int]) -> str:
    return "|".join(sorted(n.lower() for n in names))


SECOND = FieldKind("second", 0, 59, r"0?[0-9]|[1-5][0-9]")
MINUTE = FieldKind("minute", 0, 59, r"0?[0-9]|[1-5][0-9]")
HOUR = FieldKind("hour", 0, 23, r"0?[0-9]|1[0-9]|2[0-3]")
DAY = FieldKind("day-of-month", 1, 31, r"0?[1-9]|[12][0-9]|3[01]")
MONTH = FieldKind("month", 1, 12, r"0?[1-9]|1[012]|" + _names(MONTH_NAMES), {k.lower(): v for k, v in MONTH_NAMES.items()})
WEEKDAY = FieldKind("day-of-week", 0, 6, r"0?[0-7]|" + _names(DAY_NAMES), DAY_NAMES)
YEAR = FieldKind("year", 1970, 2099, r"19[789][0-9]|20[0-9]{2}")


def _step(token: str) -> int:
    """A step as supercronic's number table reads it: 0-59 (or 00-09) and the years; else 0."""
    if re.fullmatch(r"[0-9]|[0-5][0-9]|19[7-9][0-9]|20[0-9]{2}", token):
        return int(token)
    return 0


@dataclass
class _Entries:
    values: set[int]
    restricted: bool  # no `*` or `?` among the entries
    specials: list[str]  # entries only the day fields know (L, LW, 15W, 5L, 5#3)


def _entries(text: str, kind: FieldKind) -> _Entries:
    parts = [part for part in text.split(",") if part]
    if not parts:
        raise ExpressionError(f"{kind.name} field: missing directive")
    value = f"(?:{kind.value})"
    out = _Entries(set(), True, [])
    for part in parts:
        entry = part.lower()
        if entry in ("*", "?"):
            out.values.update(range(kind.low, kind.high + 1))
            out.restricted = False
            continue
        if re.fullmatch(value, entry):
            out.values.add(kind.number(entry))
            continue
        found = re.fullmatch(f"({value})-({value})", entry)
        if found:
            first, last = kind.number(found[1]), kind.number(found[2])
            if last < first:
                raise ExpressionError(f"invalid interval {entry} (normalized to {first}-{last})")
            out.values.update(range(first, last + 1))
            continue
        found = (re.fullmatch(r"\*/(\d+)", entry) or re.fullmatch(f"({value})/(\\d+)", entry)
                 or re.fullmatch(f"({value})-({value})/(\\d+)", entry))
        if found:
            groups = found.groups()
            step = _step(groups[-1])
            if not 1 <= step <= kind.high:
                raise ExpressionError(f"invalid interval {entry}")
            first = kind.number(groups[0]) if len(groups) > 1 else kind.low
            last = kind.number(groups[1]) if len(groups) > 2 else kind.high
            out.values.update(range(first, last + 1, step))
            continue
        out.specials.append(entry)
    return out


def _plain(text: str, kind: FieldKind) -> tuple[int, ...]:
    entries = _entries(text, kind)
    if entries.specials:
        raise ExpressionError(f"syntax error in {kind.name} field: '{entries.specials[0]}'")
    return tuple(sorted(entries.values))


@dataclass(frozen=True)
class DayRule:
    """Which days of a month run: supercronic's two day fields together."""

    days: frozenset[int] = frozenset()
    workdays: frozenset[int] = frozenset()  # 15W: the weekday nearest the 15th, within the month
    last_day: bool = False
    last_workday: bool = False
    day_restricted: bool = False
    weekdays: frozenset[int] = frozenset()  # 0 = Sunday
    nth_weekdays: frozenset[tuple[int, int]] = frozenset()  # (n, weekday): 5#3 is (3, 5)
    last_weekdays: frozenset[int] = frozenset()  # 5L
    weekday_restricted: bool = False

    def days_of(self, year: int, month: int) -> list[int]:
        last = calendar.monthrange(year, month)[1]
        if not self.day_restricted and not self.weekday_restricted:
            return list(range(1, last + 1))
        chosen: set[int] = set()
        if self.day_restricted:
            chosen |= {d for d in self.days if d <= last}
            chosen |= {_workday(year, month, d, last) for d in self.workdays if d <= last}
            if self.last_day:
                chosen.add(last)
            if self.last_workday:
                chosen.add(_workday(year, month, last, last))
        if self.weekday_restricted:
            first_weekday = (calendar.weekday(year, month, 1) + 1) % 7  # 0 = Sunday
            for day in range(1, last + 1):
                weekday = (first_weekday + day - 1) % 7
                if weekday in self.weekdays or (((day - 1) // 7 + 1, weekday) in self.nth_weekdays) or (
                        weekday in self.last_weekdays and day + 7 > last):
                    chosen.add(day)
        return sorted(chosen)


def _workday(year: int, month: int, day: int, last: int) -> int:
    weekday = calendar.weekday(year, month, day)  # Monday = 0
    if weekday == 5:  # Saturday: the Friday before, unless that leaves the month
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: the Monday after, unless that leaves the month
        return day + 1 if day < last else day - 2
    return day


def _days_of_month(text: str) -> DayRule:
    days = _entries(text, DAY)
    workdays: set[int] = set()
    last_day = last_workday = False
    for entry in days.specials:
        if entry == "l":
            last_day = True
        elif entry == "lw":
            last_workday = True
        elif re.fullmatch(f"({DAY.value})w", entry):
            workdays.add(DAY.number(entry[:-1]))
        else:
            raise ExpressionError(f"syntax error in day-of-month field: '{entry}'")
    return DayRule(days=frozenset(days.values) if days.restricted else frozenset(), workdays=frozenset(workdays),
                   last_day=last_day, last_workday=last_workday, day_restricted=days.restricted)


def _days_of_week(text: str, month_days: DayRule) -> DayRule:
    weekdays = _entries(text, WEEKDAY)
    nth: set[tuple[int, int]] = set()
    last_of: set[int] = set()
    for entry in weekdays.specials:
        found = re.fullmatch(f"({WEEKDAY.value})(?:(l)|#([1-5]))", entry)
        if not found:
            raise ExpressionError(f"syntax error in day-of-week field: '{entry}'")
        if found[2]:
            last_of.add(WEEKDAY.number(found[1]))
        else:
            nth.add((int(found[3]), WEEKDAY.number(found[1])))
    return replace(month_days, weekdays=frozenset(weekdays.values) if weekdays.restricted else frozenset(),
                   nth_weekdays=frozenset(nth), last_weekdays=frozenset(last_of),
                   weekday_restricted=weekdays.restricted)


@dataclass(frozen=True)
class Expression:
    text: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    years: tuple[int, ...]
    day_rule: DayRule

    def next_after(self, after: datetime) -> datetime | None:
        """The first wall time strictly after `after` (naive, to the second), or None: never again."""
        start = after.replace(microsecond=0, tzinfo=None) + timedelta(seconds=1)
        for year in self.years[bisect_left(self.years, start.year):]:
            this_year = year == start.year
            for month in self.months[bisect_left(self.months, start.month) if this_year else 0:]:
                this_month = this_year and month == start.month
                for day in self.day_rule.days_of(year, month):
                    if this_month and day < start.day:
                        continue
                    found = self._time_of_day(date(year, month, day), start if this_month and day == start.day else None)
                    if found is not None:
                        return found
        return None

    def _time_of_day(self, day: date, start: datetime | None) -> datetime | None:
        """The first time of `day` at or after `start` (None: from midnight)."""
        floor = (start.hour, start.minute, start.second) if start else (0, 0, 0)
        for hour in self.hours[bisect_left(self.hours, floor[0]):]:
            same_hour = hour == floor[0]
            for minute in self.minutes[bisect_left(self.minutes, floor[1]) if same_hour else 0:]:
                same_minute = same_hour and minute == floor[1]
                seconds = self.seconds[bisect_left(self.seconds, floor[2]) if same_minute else 0:]
                if seconds:
                    return datetime(day.year, day.month, day.day, hour, minute, seconds[0])
        return None


def parse_expression(text: str) -> Expression:
    """Parse 5, 6 or 7 fields (or a macro) as supercronic's ParseStrict does; ExpressionError says why not."""
    fields = _MACRO_PATTERN.sub(lambda m: MACROS[m.group()], text).split()
    if len(fields) < 5:
        raise ExpressionError("missing field(s)")
    if len(fields) > 7:
        raise ExpressionError("too many fields")
    seconds: tuple[int, ...] = (0,)
    if len(fields) == 7:
        seconds = _plain(fields.pop(0), SECOND)
    minute, hour, day, month, weekday, *year = fields
    minutes = _plain(minute, MINUTE)  # in supercronic's order, so that the first bad field is the one named
    hours = _plain(hour, HOUR)
    month_days = _days_of_month(day)
    months = _plain(month, MONTH)
    day_rule = _days_of_week(weekday, month_days)
    years = _plain(year[0], YEAR) if year else tuple(range(YEAR.low, YEAR.high + 1))
    return Expression(text, seconds, minutes, hours, months, years, day_rule)
