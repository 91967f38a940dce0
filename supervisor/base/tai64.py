"""TAI64N, the time stamps of s6 and skalibs (their `tain`), in one place.

A TAI64N label is 8 bytes of seconds since the TAI64 base (2**62 is 1970-01-01 00:00:10 TAI)
and 4 bytes of nanoseconds. skalibs turns the wall clock (UTC) into TAI by adding the leap
seconds its table knows: 10 at 1970 and 27 since, 37 since 2017. Printed, a label is "@" and
24 hexadecimal digits, as s6-svstat, s6-log and s6-tai64n print it. A leap second is added here.

Standard library only and importing nothing: the clients (pysvstat) load it.
"""

TAI64_BASE = 1 << 62
TAI_MINUS_UTC = 37  # TAI - UTC since 2017, as s6's leap second table has it


def tain(unix_time: float) -> tuple[int, int]:
    """(TAI64 seconds, nanoseconds) of a wall-clock time, as skalibs' tain_from_timespec."""
    seconds = int(unix_time // 1)
    return TAI64_BASE + seconds + TAI_MINUS_UTC, int((unix_time - seconds) * 1e9) % 1_000_000_000


def label(unix_time: float) -> str:
    """The printed TAI64N label, @ and 24 hex digits: s6-svstat's updownsince, s6-log's stamps
    and the names of its archives."""
    seconds, nanos = tain(unix_time)
    return f"@{seconds:016x}{nanos:08x}"
