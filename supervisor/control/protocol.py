"""The control protocol, pure and standard-library only (the clients import it).

One connection carries one request and one answer. The request is a single
JSON object on one line, at most MAX_FRAME bytes:

    {"v": 2, "verb": "status", "services": ["sshd"]}

The answer is a head line, then as many item lines as the head's "items" says
(none when it has no "items"), each a JSON object on its own line of at most
MAX_ANSWER_LINE bytes. So an answer of any size (1,000 services, a log of long
lines, 2,000 processes) is streamed, and a client holds one line at a time:

    {"ok": true, "items": 2}
    {"name": "cron", ...}
    {"name": "sshd", ...}

    {"ok": false, "error": "...", "code": 100}

Verbs: ping; status [services]; control services actions [wait timeout_ms] [give_up report settle_ms];
log service [lines]; forensics service; audit message (a refusal seen by a client);
metrics (the Prometheus page, as items of {"text": ...} to be written out in order).

JSON is read and written without the json package (dumps, loads): `import json` costs a fresh
client more than its own work does (json's decoder imports re, and re imports enum). The C
accelerator `_json` that json.dumps and json.loads use underneath needs neither, so it is driven
directly, with json's own defaults: the same text out, the same values in, the same errors (a
JSONDecodeError is a ValueError; too deep a nesting raises RecursionError; an integer beyond
Python's digit limit raises ValueError). pys6 runs on CPython, which always has `_json`.
"""

import _json
import _signal

# The exit codes an answer carries, as s6's tools use them; their home is base/exits, named here
# too for the clients and the server, which speak of them as protocol.EXIT_*.
from ..base.terms import EXIT_FORBIDDEN as EXIT_FORBIDDEN
from ..base.terms import EXIT_NOT_RUNNING as EXIT_NOT_RUNNING
from ..base.terms import EXIT_OK as EXIT_OK
from ..base.terms import EXIT_SYSTEM as EXIT_SYSTEM
from ..base.terms import EXIT_TIMEOUT as EXIT_TIMEOUT
from ..base.terms import EXIT_USAGE as EXIT_USAGE
from ..base.terms import parse_signal_name, valid_name

# Nothing here imports json, signal or typing: a fresh client pays for every module it loads.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, TypeVar

    Checked = TypeVar("Checked")

VERSION = 2
MAX_FRAME = 65536  # a request
MAX_ANSWER_LINE = 1 << 20  # one line of an answer: a head or an item
MAX_ANSWER = 64 << 20  # a whole answer, as a client accepts it
MAX_ITEMS = 1_000_000
MAX_TIMEOUT_MS = 2**32 - 1
MAX_SETTLE_MS = 10_000  # how long a report may wait for what its actions set going (Request.settle_ms)
# What one control request may ask for. Actions are applied in order, each to every service, as
# s6-svc applies its letters: at most 63 of them, s6-svc's own limit ("too many commands", 100).
# Services are named once (a name given twice is applied once), and actions x services is at most
# MAX_APPLICATIONS: `pysvc -d` on 4,096 services, or 63 actions on 65. Each application is one
# kill() or one command the service acts on, and PID 1 yields between two of them; past the bound
# a request is refused as a whole, before anything is done.
MAX_ACTIONS = 63
MAX_APPLICATIONS = 4096

VERBS = ("ping", "status", "control", "log", "forensics", "audit", "metrics", "invalid")  # "invalid": unreadable
STATE_ACTIONS = ("up", "up-remove-down", "down", "down-create-down", "once", "once-at-most", "restart")
# s6-ready, s6-restarted-ready: pys6's s6-svc -wU -wR and s6-svwait -U -R (handlers.S6_WAIT_PREDICATES)
WAITS = ("up", "ready", "down", "finished", "restarted", "restarted-ready", "s6-ready", "s6-restarted-ready")

# s6-svc's signal letters: (signal, to the whole process group?)
SIGNAL_LETTERS: dict[str, tuple[int, bool]] = {
    "a": (_signal.SIGALRM, False), "b": (_signal.SIGABRT, False), "q": (_signal.SIGQUIT, False),
    "h": (_signal.SIGHUP, False), "k": (_signal.SIGKILL, False), "t": (_signal.SIGTERM, False),
    "i": (_signal.SIGINT, False), "1": (_signal.SIGUSR1, False), "2": (_signal.SIGUSR2, False),
    "p": (_signal.SIGSTOP, False), "c": (_signal.SIGCONT, False), "y": (_signal.SIGWINCH, False),
    "P": (_signal.SIGSTOP, True), "C": (_signal.SIGCONT, True), "K": (_signal.SIGKILL, True),
}
STATE_LETTERS = {"u": "up", "U": "up-remove-down", "d": "down", "D": "down-create-down", "o": "once",
                 "O": "once-at-most", "r": "restart"}
WAIT_LETTERS = {"u": "up", "U": "ready", "d": "down", "D": "finished", "r": "restarted", "R": "restarted-ready"}
# s6-svc -s accepts only the signals it has letters for.
ALLOWED_SIGNALS = {number for number, _group in SIGNAL_LETTERS.values()}


def describe_state(record: "Mapping[str, object]") -> str:
    """A service's state record (a control report's before or after, handlers.state_record) in a
    few words: "down (exitcode 1), wanted up, bailed, 5 deaths in 60 s". The server says this of a
    wait that timed out or cannot be met; pysvc of what its actions did."""
    phase, pid = record.get("phase"), record.get("pid")
    if phase == "up":
        text = f"up, pid {pid}" + ("" if record.get("ready") else ", not ready")
    else:
        text = {"waiting": "down, about to start", "finishing": "down, its finish running"}.get(str(phase), "down")
        if record.get("signal"):
            text += f" (killed by {record['signal']})"
        elif record.get("exitcode") is not None:
            text += f" (exitcode {record['exitcode']})"
    text += f", wanted {record.get('want')}"
    if record.get("bailed"):
        text += ", bailed"
    deaths = record.get("deaths")
    if isinstance(deaths, int) and deaths:
        window = record.get("window")
        text += f", {deaths} death{'s' if deaths > 1 else ''}"
        text += f" in {window:g} s" if isinstance(window, (int, float)) else ""
    return text


class ProtocolError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def service_name(argument: str) -> str:
    """A bare name, or the last component of an s6 path (/run/service/sshd)."""
    name = argument.rstrip("/").rsplit("/", 1)[-1]
    if not valid_name(name):
        raise ProtocolError(f"invalid service name: {argument!r}")
    return name


def _bare_name(name: str) -> str:
    """On the wire only bare names: clients reduce s6 paths before sending."""
    if not valid_name(name):
        raise ProtocolError(f"invalid service name: {name[:40]!r}")
    return name


def signal_number(text: str) -> int:
    """s6-svc -s: a name (any case, with or without SIG) or a number, among the allowed ones."""
    try:
        number = parse_signal_name(text)
    except ValueError as exc:
        raise ProtocolError(f"unknown signal: {exc}") from None
    if number not in ALLOWED_SIGNALS:
        raise ProtocolError(f"signal not allowed: {text[:20]} (only those s6-svc has letters for)")
    return number


class _Value:
    """An immutable record compared by its fields: what a NamedTuple gives, without importing typing."""

    __slots__: tuple[str, ...] = ()

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Value) and type(other) is type(self) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        inside = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({inside})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")


class WireAction(_Value):
    """One control action: a state change, or a signal."""

    __slots__ = ("do", "signum", "group")
    do: str  # one of STATE_ACTIONS, or "signal"
    signum: int
    group: bool

    def __init__(self, do: str, signum: int = 0, group: bool = False) -> None:
        object.__setattr__(self, "do", do)
        object.__setattr__(self, "signum", signum)
        object.__setattr__(self, "group", group)

    def to_json(self) -> dict[str, object]:
        if self.do == "signal":
            return {"do": "signal", "signal": self.signum, "group": self.group}
        return {"do": self.do}


class Request(_Value):
    """One request, checked. Two flags for log: `follow` keeps the answer open and streams the
    service's lines as they come (pysvstat --log -f), `timestamps` gives each line its arrival time.

    Three of pysvc's own for a control request, beyond s6-svc's words (s6-svc, s6-svwait and the
    s6 FIFOs never set them): `give_up` ends a wait that cannot be met (an up wait on a service
    wanted down or bailed) at once with EXIT_FORBIDDEN instead of waiting for ever as s6-svc does;
    `report` asks for one item per service with its state before the actions and at the answer
    (what pysvc tells a person at a terminal); `settle_ms`, with `report` and no wait, lets the
    answer wait at most that long for what the actions set going (a restart's new process), and
    never fails for it: the report then says how far it got."""

    __slots__ = ("verb", "services", "actions", "wait", "timeout_ms", "lines", "message", "follow", "timestamps",
                 "give_up", "report", "settle_ms")
    verb: str
    services: tuple[str, ...]
    actions: "tuple[WireAction, ...]"
    wait: str | None
    timeout_ms: int
    lines: int
    message: str
    follow: bool
    timestamps: bool
    give_up: bool
    report: bool
    settle_ms: int

    def __init__(self, verb: str, services: tuple[str, ...] = (), actions: "tuple[WireAction, ...]" = (),
                 wait: str | None = None, timeout_ms: int = 0, lines: int = 100, message: str = "",
                 follow: bool = False, timestamps: bool = False, give_up: bool = False, report: bool = False,
                 settle_ms: int = 0) -> None:
        values = (verb, services, actions, wait, timeout_ms, lines, message, follow, timestamps, give_up, report,
                  settle_ms)
        for name, value in zip(self.__slots__, values, strict=True):
            object.__setattr__(self, name, value)

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"v": VERSION, "verb": self.verb}
        if self.services:
            body["services"] = list(self.services)
        if self.actions:
            body["actions"] = [a.to_json() for a in self.actions]
        if self.wait:
            body["wait"] = self.wait
            body["timeout_ms"] = self.timeout_ms
        if self.verb == "log":
            body["lines"] = self.lines
        if self.verb == "audit":
            body["message"] = self.message
        for flag in ("follow", "timestamps", "give_up", "report"):
            if getattr(self, flag):
                body[flag] = True
        if self.settle_ms:
            body["settle_ms"] = self.settle_ms
        return body


def _flag(raw: "dict[str, object]", name: str) -> bool:
    return bool(_expect(raw.get(name, False), bool, name))


def encode(obj: "Mapping[str, object]", limit: int = MAX_FRAME) -> bytes:
    data = dumps(obj, compact=True).encode() + b"\n"
    if len(data) > limit:
        raise ProtocolError("frame too large")
    return data


def encode_answer_line(obj: "Mapping[str, object]") -> bytes:
    """One line of an answer; an item that cannot fit (it should never happen) says so instead."""
    try:
        return encode(obj, MAX_ANSWER_LINE)
    except ProtocolError:
        return encode({"error": "item too large to send"})


def _loads(frame: bytes, what: str, code: int) -> object:
    try:
        return loads(frame)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError(f"{what} is not JSON", code) from None
    except RecursionError:
        raise ProtocolError(f"{what} is nested too deep", code) from None


def _expect(value: object, kind: "type[Checked]", what: str) -> "Checked":
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ProtocolError(f"{what}: wrong type")
    return value


def _action(raw: object) -> "WireAction":
    raw = _expect(raw, dict, "action")
    do = _expect(raw.get("do"), str, "action.do")
    if do == "signal":
        signum = _expect(raw.get("signal"), int, "action.signal")
        if signum not in ALLOWED_SIGNALS:
            raise ProtocolError(f"signal not allowed: {signum}")
        return WireAction("signal", signum, bool(_expect(raw.get("group", False), bool, "action.group")))
    if do not in STATE_ACTIONS:
        raise ProtocolError(f"unknown action: {do[:40]!r}")
    return WireAction(do)


def _check_work(services: int, actions: int) -> None:
    """Refuse a control request that asks for more than one request may (see MAX_APPLICATIONS)."""
    if actions > MAX_ACTIONS:
        raise ProtocolError(f"control: too many actions: {actions} (at most {MAX_ACTIONS} in one request, "
                            "as s6-svc)")
    if services * actions > MAX_APPLICATIONS:
        raise ProtocolError(f"control: too much at once: {actions} actions to {services} services "
                            f"(at most {MAX_APPLICATIONS} actions x services in one request: split it)")


def decode_request(frame: bytes) -> "Request":
    """Parse and check one request line; every problem is a ProtocolError."""
    if len(frame) > MAX_FRAME:
        raise ProtocolError("request too large")
    raw = _expect(_loads(frame, "request", EXIT_USAGE), dict, "request")
    if raw.get("v") != VERSION:
        raise ProtocolError(f"unsupported protocol version (this pyinit speaks {VERSION})")
    verb = _expect(raw.get("verb"), str, "verb")
    services = tuple(_bare_name(_expect(s, str, "services[]")) for s in _expect(raw.get("services", []), list, "services"))
    if verb in ("ping", "metrics"):
        return Request(verb)
    if verb == "status":
        return Request(verb, services)
    if verb == "control":
        if not services:
            raise ProtocolError("control: no service named")
        services = tuple(dict.fromkeys(services))  # each service once, in the order first named
        raw_actions = _expect(raw.get("actions", []), list, "actions")
        _check_work(len(services), len(raw_actions))
        actions = tuple(_action(a) for a in raw_actions)
        wait = raw.get("wait")
        if wait is not None and wait not in WAITS:
            raise ProtocolError(f"unknown wait: {str(wait)[:40]!r}")
        timeout_ms = _expect(raw.get("timeout_ms", 0), int, "timeout_ms")
        if not 0 <= timeout_ms <= MAX_TIMEOUT_MS:
            raise ProtocolError(f"timeout_ms: must be 0 (no limit) to {MAX_TIMEOUT_MS}")
        if not actions and wait is None:
            raise ProtocolError("control: nothing to do")
        settle_ms = _expect(raw.get("settle_ms", 0), int, "settle_ms")
        if not 0 <= settle_ms <= MAX_SETTLE_MS:
            raise ProtocolError(f"settle_ms: must be 0 to {MAX_SETTLE_MS}")
        return Request(verb, services, actions, wait, timeout_ms, give_up=_flag(raw, "give_up"),
                       report=_flag(raw, "report"), settle_ms=settle_ms)
    if verb in ("log", "forensics"):
        if len(services) != 1:
            raise ProtocolError(f"{verb}: name exactly one service")
        lines = _expect(raw.get("lines", 100), int, "lines")
        follow = verb == "log" and _flag(raw, "follow")
        if not (0 if follow else 1) <= lines <= 100_000:  # following, 0 is "only the new lines"
            raise ProtocolError("lines: must be 1 to 100000" + (" (or 0 when following)" if verb == "log" else ""))
        timestamps = verb == "log" and _flag(raw, "timestamps")
        return Request(verb, services, lines=lines, follow=follow, timestamps=timestamps)
    if verb == "audit":
        return Request(verb, message=str(_expect(raw.get("message", ""), str, "message"))[:1000])
    raise ProtocolError(f"unknown verb: {verb[:40]!r}")


def decode_answer_head(frame: bytes) -> "dict[str, Any]":
    raw = _loads(frame, "the supervisor's answer", EXIT_SYSTEM)
    if not isinstance(raw, dict) or "ok" not in raw:
        raise ProtocolError("the supervisor sent garbage", EXIT_SYSTEM)
    items = raw.get("items", 0)
    if not isinstance(items, int) or isinstance(items, bool) or not 0 <= items <= MAX_ITEMS:
        raise ProtocolError("the supervisor sent garbage (items)", EXIT_SYSTEM)
    return raw


def decode_answer_item(frame: bytes) -> "dict[str, Any]":
    raw = _loads(frame, "the supervisor's answer", EXIT_SYSTEM)
    if not isinstance(raw, dict):
        raise ProtocolError("the supervisor sent garbage", EXIT_SYSTEM)
    return raw


def error(message: str, code: int = EXIT_USAGE) -> dict[str, object]:
    return {"ok": False, "error": message, "code": code}


# --- JSON without the json package -------------------------------------------------------

_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}
_JSON_WHITESPACE = " \t\n\r"


class _ScannerContext:
    """The attributes _json.make_scanner reads: json.JSONDecoder's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


def _encoder(sort_keys: bool, item_separator: str, key_separator: str, ensure_ascii: bool) -> _json.make_encoder:
    as_string = _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring
    return _json.make_encoder({}, _not_serializable, as_string, None, key_separator, item_separator,
                              sort_keys, False, True)


def _not_serializable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: object, *, compact: bool = False, sort_keys: bool = False, ensure_ascii: bool = True) -> str:
    """json.dumps(value, sort_keys=..., ensure_ascii=...), with separators (",", ":") when compact."""
    if isinstance(value, str):
        return str(_json.encode_basestring_ascii(value) if ensure_ascii else _json.encode_basestring(value))
    item, key = (",", ":") if compact else (", ", ": ")
    # A new encoder each time: its circular-reference markers must start empty.
    return "".join(_encoder(sort_keys, item, key, ensure_ascii)(value, 0))


def loads(data: bytes | str) -> object:
    """json.loads for text, or for bytes in UTF-8 (the protocol's encoding: no BOM, no UTF-16 or -32 guessing);
    raises ValueError (UnicodeDecodeError, JSONDecodeError) or RecursionError."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    start = len(text) - len(text.lstrip(_JSON_WHITESPACE))
    context: Any = _ScannerContext  # typeshed types the context as a scanner; _json reads only its attributes
    scan = _json.make_scanner(context)
    try:
        value, end = scan(text, start)
    except StopIteration as stop:
        raise _decode_error("Expecting value", text, stop.value) from None
    rest = len(text) - len(text.rstrip(_JSON_WHITESPACE))
    if end != len(text) - rest:
        raise _decode_error("Extra data", text, end)
    return value


def _decode_error(message: str, text: str, position: int) -> ValueError:
    """json's own error type; importing it is paid only when the input is not JSON."""
    from json import JSONDecodeError

    return JSONDecodeError(message, text, position)
