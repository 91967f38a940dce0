"""supercronic's log lines, as its logger (logrus) writes them: pure formatting, the time passed in.

Text (the default): `time="2026-12-04T15:04:05Z" level=info msg="job succeeded"`
then the fields in key order, a value quoted (Go's %q) unless it is only letters,
digits and `-._/@^+`. JSON (-json): one object with every key sorted, the level,
msg and time among them. Go's own spellings are kept where they show: RFC 3339
times (`Z` for UTC), durations (`1m30s`), the time a job was due
(`2026-12-04 15:04:05 +0100 CET`) and signal words (`terminated`).
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from structlog.typing import EventDict

    from ..logs.events import Renderer

BARE = re.compile(r"[A-Za-z0-9\-._/@^+]+")
GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
              "\\": "\\\\", '"': '\\"'}
LEVELS = {"debug": "debug", "info": "info", "warning": "warning", "warn": "warning", "error": "error",
          "critical": "fatal", "fatal": "fatal", "exception": "error"}


def go_time(when: datetime) -> str:
    """RFC 3339 to the second, as Go writes it: `Z` for UTC, else the offset."""
    text = when.isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def go_time_string(when: datetime) -> str:
    """Go's time.Time.String(): `2006-01-02 15:04:05 -0700 MST` (fractions only when there are some)."""
    fraction = f".{when.microsecond:06d}".rstrip("0") if when.microsecond else ""
    return f"{when:%Y-%m-%d %H:%M:%S}{fraction} {when:%z} {when.tzname() or when.strftime('%z')}"


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String(): 0s, 1.5s, 2m0s, 1h2m3.25s, 250ms."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    nanos = round(abs(seconds) * 1e9)
    if nanos < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanos >= size:
                return sign + _decimal(nanos, size) + unit
    hours, rest = divmod(nanos, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = _decimal(rest, 10**9) + "s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return sign + text


def _decimal(value: int, size: int) -> str:
    whole, fraction = divmod(value, size)
    if not fraction:
        return str(whole)
    digits = len(str(size)) - 1
    return f"{whole}.{fraction:0{digits}d}".rstrip("0")


def go_signal_word(signum: int) -> str:
    """Go's name of a signal in `signal: killed`: the C library's words, lower-cased; RT signals by number."""
    if signal.SIGRTMIN <= signum <= signal.SIGRTMAX:
        return f"signal {signum}"
    try:
        text = signal.strsignal(signum)
    except ValueError:
        text = None
    if not text or text.startswith("Unknown signal") or text.startswith("Real-time"):
        return f"signal {signum}"
    return text[0].lower() + text[1:]


def exit_error(exitcode: int | None, signum: int | None) -> str:
    """What Go's exec says of a command that failed: `exit status 3`, `signal: killed`."""
    if signum is not None:
        return f"signal: {go_signal_word(signum)}"
    return f"exit status {exitcode}"


def go_reason(exc: OSError) -> str:
    """An OSError in Go's words: the C library's message, lower-cased (`no such file or directory`)."""
    reason = exc.strerror or str(exc)
    return reason[:1].lower() + reason[1:]


def go_quote(text: str) -> str:
    """Go's %q: escapes for quotes, backslashes and controls; invalid UTF-8 (surrogate escapes) as \\xNN."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in GO_ESCAPES:
            out.append(GO_ESCAPES[char])
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (decoded with surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not char.isprintable() and char != " ":
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _value(value: object) -> str:
    text = value if isinstance(value, str) else _scalar(value)
    if text == "" or BARE.fullmatch(text):
        return text
    return go_quote(text)


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def text_line(level: str, message: str, fields: Mapping[str, object], when: datetime) -> str:
    parts = [f'time="{go_time(when)}"', f"level={LEVELS.get(level, level)}", f"msg={_value(message)}"]
    parts += [f"{key}={_value(fields[key])}" for key in sorted(fields)]
    return " ".join(parts)


def json_line(level: str, message: str, fields: Mapping[str, object], when: datetime) -> str:
    record: dict[str, object] = {key: _jsonable(value) for key, value in fields.items()}
    record |= {"level": LEVELS.get(level, level), "msg": message, "time": go_time(when)}
    text = json.dumps(dict(sorted(record.items())), ensure_ascii=False, separators=(",", ":"))
    # Go's encoder escapes these for HTML; so do we, so that the bytes match.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def renderer(as_json: bool) -> Renderer:
    """A structlog processor writing pycrond's events as supercronic's lines, stamped when logged."""
    write = json_line if as_json else text_line

    def render(_logger: object, method: str, event: EventDict) -> str:
        message = str(event.pop("event", ""))
        return write(method, message, event, datetime.now().astimezone())

    return render


def line_template(level: str, fields: Mapping[str, object], as_json: bool) -> Callable[[str, datetime], str]:
    """The line for one message of a job's output; the fields, the same for every line of a run, rendered once."""
    if as_json:
        record = {key: _jsonable(value) for key, value in fields.items()} | {"level": LEVELS.get(level, level)}
        before = {k: v for k, v in record.items() if k < "msg"}
        after = {k: v for k, v in record.items() if k > "time"}
        middle = {k: v for k, v in record.items() if "msg" < k < "time"}

        def dumps(part: dict[str, object]) -> str:
            text = json.dumps(dict(sorted(part.items())), ensure_ascii=False, separators=(",", ":"))[1:-1]
            return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")

        head = "{" + dumps(before) + ("," if before else "") + '"msg":'
        between = ("," + dumps(middle) if middle else "") + ',"time":"'
        tail = '"' + ("," + dumps(after) if after else "") + "}"

        def json_message(message: str, when: datetime) -> str:
            text = json.dumps(message, ensure_ascii=False)
            text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            return head + text + between + go_time(when) + tail

        return json_message
    suffix = "".join(f" {key}={_value(fields[key])}" for key in sorted(fields))
    level_text = f" level={LEVELS.get(level, level)} msg="

    def text_message(message: str, when: datetime) -> str:
        return f'time="{go_time(when)}"' + level_text + _value(message) + suffix

    return text_message
