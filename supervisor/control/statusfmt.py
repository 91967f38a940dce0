"""Status records to s6-svstat's words and fields. Pure, standard library only.

A status record is the JSON object pysvstat --json prints (see README): the
server builds it, the client formats it.
"""

from ..base.terms import signal_name

TYPE_CHECKING = False  # no typing at run time: the client CLIs must start fast
if TYPE_CHECKING:
    from typing import Any

    Record = dict[str, Any]


def tai64n(unix_time: float | None) -> str:
    """s6-svstat's updownsince/readysince: the TAI64N label, or NA for a time not known."""
    if unix_time is None:
        return "NA"
    from ..base import tai64  # only -o updownsince,readysince: every other pysvstat is spared the module

    return tai64.label(unix_time)


def _bool(value: bool) -> str:
    return "true" if value else "false"


FIELDS = {
    "up": lambda r: _bool(r["state"] == "up"),
    "wantedup": lambda r: _bool(r["want"] == "up"),
    "normallyup": lambda r: _bool(r["normally"] == "up"),
    "ready": lambda r: _bool(r["state"] == "up" and r["ready"]),  # s6: pid && flagready
    "paused": lambda r: _bool(r["paused"]),
    "pid": lambda r: str(r["pid"] if r["state"] == "up" and r["pid"] else -1),
    "pgid": lambda r: str(r["pgid"] if r["pgid"] else -1),
    "exitcode": lambda r: str(r["exitcode"] if r["state"] == "down" and r["exitcode"] is not None else -1),
    "signal": lambda r: signal_name(r["signum"]) if r["state"] == "down" and r["signum"] else "NA",
    "signum": lambda r: str(r["signum"] if r["state"] == "down" and r["signum"] else -1),
    "updownsince": lambda r: tai64n(r["since"]),
    "readysince": lambda r: tai64n(r["ready_since"]),
    "updownfor": lambda r: str(int(r["seconds"])),
    "readyfor": lambda r: str(int(r["ready_seconds"])) if r["ready_seconds"] is not None else "-1",
}
# pys6's s6-svstat: the fields from what s6-supervise's status file would hold (s6-svstat 2.15's
# reading of it). Readiness is s6's (an up service without notification-fd or health check is
# never ready), the pgid is s6-svstat's (the pid, -1 when down: s6 takes the service's pid for
# its group) and the readiness stamp is s6's, printed ready or not.
S6_FIELDS = {
    **FIELDS,
    "wantedup": lambda r: _bool(_s6_want_up(r)),
    "ready": lambda r: _bool(r["state"] == "up" and r.get("s6_ready", r["ready"])),
    "pgid": FIELDS["pid"],
    "readysince": lambda r: tai64n(r.get("s6_ready_since", r["ready_since"])),
    "readyfor": lambda r: _seconds_or_minus_one(r.get("s6_ready_seconds", r["ready_seconds"])),
}


def _s6_want_up(record: "Record") -> bool:
    return bool(record.get("s6_want_up", record["want"] == "up"))


def _seconds_or_minus_one(value: "float | None") -> str:
    return str(int(value)) if value is not None else "-1"


SHORT_FLAGS = {"u": "up", "w": "wantedup", "N": "normallyup", "r": "ready", "p": "pid", "g": "pgid",
               "e": "exitcode", "s": "signal", "t": "updownfor"}


def fields_line(record: "Record", fields: list[str], s6: bool = False) -> str:
    """The -o fields; `s6`: as s6-svstat 2.15 prints them (S6_FIELDS), else pysvstat's."""
    table = S6_FIELDS if s6 else FIELDS
    return " ".join(table[name](record) for name in fields)


def s6_words(record: "Record", numeric_signal: bool = False) -> str:
    """s6-svstat 2.15's own line, byte for byte as it prints it from s6-supervise's status file:
    only what differs from the usual is said, `pgid` is the pid (s6 takes the service's pid for
    its group), `ready N seconds` is s6's readiness (s6_ready: down once its finish has ended;
    up only once the service said so), and a service not started yet is `down (not started
    yet) ` with s6's space before the end of the line."""
    up = record["state"] == "up"
    not_started = not up and not record["started"] and not record["finishing"]
    if up:
        line = f"up (pid {record['pid']} pgid {record['pid']}) "
    elif not_started:
        line = "down (not started yet) "
    elif record["signum"]:
        line = f"down (signal {record['signum'] if numeric_signal else signal_name(record['signum'])}) "
    else:
        line = f"down (exitcode {record['exitcode'] or 0}) "
    if not not_started:
        line += f"{int(record['seconds'])} seconds"
    normally_up = record["normally"] == "up"
    if up and not normally_up:
        line += ", normally down"
    if not up and normally_up:
        line += ", normally up"
    if up and record["paused"]:
        line += ", paused"
    if not up and _s6_want_up(record):
        line += ", want up"
    if up and not _s6_want_up(record):
        line += ", want down"
    ready_seconds = record.get("s6_ready_seconds", record["ready_seconds"])
    if record.get("s6_ready", record["ready"]) and not not_started and ready_seconds is not None:
        line += f", ready {int(ready_seconds)} seconds"
    return line


def words(record: "Record", numeric_signal: bool = False) -> str:
    """The human summary, s6-svstat's words first, then pys6's (finishing, bailed)."""
    if record["state"] == "up":
        parts = [f"up (pid {record['pid']} pgid {record['pgid']}) {int(record['seconds'])} seconds"]
    elif not record["started"]:
        parts = ["down (not started yet)"]
    else:
        if record["signum"]:
            how = f"signal {record['signum'] if numeric_signal else signal_name(record['signum'])}"
        else:
            how = f"exitcode {record['exitcode']}"
        parts = [f"down ({how}) {int(record['seconds'])} seconds"]
    if record["started"] or record["normally"] == "down":
        parts.append(f"normally {record['normally']}")
    if record["want"] != record["state"] and record["started"]:
        parts.append(f"want {record['want']}")
    if record["paused"]:
        parts.append("paused")
    if record["state"] == "up" and record["ready"] and record["ready_seconds"] is not None:
        parts.append(f"ready {int(record['ready_seconds'])} seconds")
    health = record.get("health")  # pys6's health check (README: Health checks)
    if health == "unhealthy":
        parts.append(f"unhealthy ({record['health_failures']} of {record['health_retries']} failures)")
    elif health is not None:
        parts.append("healthy" if health == "healthy" else "health not known yet")
    if record.get("note"):  # the service's own word (core/statusnote.py), e.g. pycrond's refused lines
        parts.append(str(record["note"]))
    if record["finishing"]:
        parts.append("finishing")
    if record["bailed"]:
        parts.append(f"bailed ({record['crash_deaths']} deaths in {record['window']:g} seconds)")
    return ", ".join(parts)


class Summary:
    """The closing line of pysvstat, counted one record at a time."""

    def __init__(self) -> None:
        self.total = self.up = self.bailed = 0

    def add(self, record: "Record") -> None:
        self.total += 1
        self.up += record["state"] == "up"
        self.bailed += bool(record["bailed"])

    def line(self) -> str:
        text = f"{self.total} services: {self.up} up, {self.total - self.up} down"
        return text + (f", {self.bailed} bailed" if self.bailed else "")


# C0 controls but TAB, DEL, C1 controls and the Unicode line and paragraph separators.
_CONTROLS = [*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]
_ESCAPES = {code: (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}") for code in _CONTROLS}


def escape_controls(text: str) -> str:
    """Control characters as visible escapes (\\x1b), for a terminal that would act on them."""
    return text.translate(_ESCAPES)


def check_problem(record: "Record", mode: str = "ready") -> str | None:
    """What fails pysvstat --check (mode "ready", the plain --check) or --check=live in this
    service; None when nothing does. A bail fails both, and so does a crash loop (wanted up, down,
    dead twice or more in its crash window). A service an operator brought down (pysvc -d: wanted
    down) fails neither: that was a choice, and a liveness probe restarting the whole container
    over it would undo it. For readiness a normally-up service wanted up must be up, and ready
    if it says when it is (so one not yet up at boot is not ready)."""
    if record["bailed"]:
        return "bailed"
    if record["want"] == "down":
        return None
    if record["state"] != "up" and int(record["deaths"]) >= 2:
        return "crash-looping"
    if mode == "live" or record["normally"] != "up":
        return None
    if record["state"] != "up":
        return "not up"
    return None if record["ready"] else "not ready"


def is_as_it_should_be(record: "Record", mode: str = "ready") -> bool:
    return check_problem(record, mode) is None
