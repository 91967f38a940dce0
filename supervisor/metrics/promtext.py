"""Prometheus' text exposition format (0.0.4): writing families, and merging texts that others wrote.

Writing is shared by pyinit and pycrond. Merging is for the metrics files that
services drop into $PYS6_METRICS_DIR: each is parsed line by line, and what is
not a valid HELP, TYPE or sample line is left out and counted, so one careless
file can never make the whole scrape invalid. Families of the same name from
several files are served as one (the first HELP and TYPE win; a file that
declares another type for it has those samples left out), and a series seen
twice is served once, because Prometheus rejects both.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
# What a sample of a family may be called beside the family's own name.
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}

Sample = tuple[str, float | int]  # (labels already written as {a="b"} or "", value)


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def labels(**pairs: object) -> str:
    """{a="x",b="y"} in the order given; "" for none."""
    if not pairs:
        return ""
    return "{" + ",".join(f'{key}="{escape_label(str(value))}"' for key, value in pairs.items()) + "}"


def number(value: float | int) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def family(name: str, kind: str, help_text: str, samples: Iterable[Sample], suffix: str = "") -> list[str]:
    """HELP, TYPE and the samples of one family (`suffix` joins each sample's name: _bucket ...)."""
    out = [f"# HELP {name} {escape_help(help_text)}", f"# TYPE {name} {kind}"]
    out += [f"{name}{suffix}{label_text} {number(value)}" for label_text, value in samples]
    return out


# --- reading what others wrote ------------------------------------------------------------------

# No pattern below has two ways of matching the same text (each repetition is followed by
# something it cannot match), so a line of a million spaces or digits is rejected in one pass,
# never in hours; labels are read pair by pair. (Possessive quantifiers would say the same
# more briefly, but CPython 3.11.2, Debian bookworm's, matches some of them wrongly.)
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_NAME_AT = re.compile(_NAME)
_OPEN_AT = re.compile(r"\s*\{")
_PAIR_AT = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\\n]|\\[\\"n])*)"\s*')
_CLOSE_AT = re.compile(r"\s*\}")
_DECLARATION = re.compile(rf"#\s+(?P<what>HELP|TYPE)\s+(?P<name>{_NAME})(?:\s+(?P<rest>.*))?")
_VALUE = re.compile(r"[+-]?(?:Inf|inf|NaN|nan|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)")
_TIMESTAMP = re.compile(r"-?\d{1,19}")


def _labels_at(line: str, pos: int) -> tuple[str, int] | None:
    """The labels opened by the `{` at line[pos - 1], in a canonical order, and the position
    after their `}`; None when they are not well formed."""
    pairs: list[str] = []
    while True:
        pair = _PAIR_AT.match(line, pos)
        if pair is None:  # `{}`, or a trailing comma
            close = _CLOSE_AT.match(line, pos)
            return (",".join(sorted(pairs)), close.end()) if close is not None else None
        pairs.append(f"{pair[1]}={pair[2]}")
        pos = pair.end()
        if line.startswith(",", pos):
            pos += 1
        elif line.startswith("}", pos):
            return ",".join(sorted(pairs)), pos + 1
        else:
            return None


def parse_sample(line: str) -> tuple[str, str] | None:
    """The name and the labels (canonical: sorted, for telling series apart) of a sample line
    without surrounding whitespace; None when it is not NAME[{LABELS}] VALUE [TIMESTAMP]."""
    name = _NAME_AT.match(line)
    if name is None:
        return None
    end, labels = name.end(), ""
    opened = _OPEN_AT.match(line, end)
    if opened is not None:
        read = _labels_at(line, opened.end())
        if read is None:
            return None
        labels, end = read
    rest = line[end:]
    if not rest[:1].isspace():
        return None  # the value must be apart from the name or the labels
    fields = rest.split()
    if not 1 <= len(fields) <= 2 or not _VALUE.fullmatch(fields[0]) or \
            (len(fields) == 2 and not _TIMESTAMP.fullmatch(fields[1])):
        return None
    return name.group(), labels


@dataclass
class Family:
    name: str
    kind: str = "untyped"
    help_text: str | None = None
    lines: list[str] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)


@dataclass
class Merged:
    """Families from several texts, in the order first seen; `rejected` counts lines left out, per source."""

    families: dict[str, Family] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        out: list[str] = []
        for fam in self.families.values():
            if not fam.lines:
                continue
            if fam.help_text is not None:
                out.append(f"# HELP {fam.name} {fam.help_text}")
            if fam.kind != "untyped" or fam.help_text is not None:
                out.append(f"# TYPE {fam.name} {fam.kind}")
            out += fam.lines
        return "\n".join(out) + "\n" if out else ""


def _family_of(sample_name: str, declared: dict[str, str]) -> str:
    if sample_name in declared:
        return sample_name
    for suffix in ("_bucket", "_sum", "_count"):
        base = sample_name.removesuffix(suffix)
        if base != sample_name and suffix in SUFFIXES.get(declared.get(base, ""), ()):
            return base
    return sample_name


def merge(merged: Merged, source: str, text: str, reserved: tuple[str, ...] = ()) -> None:
    """Add the families of `text` (from `source`) to `merged`, leaving out names that start with `reserved`."""
    declared: dict[str, str] = {}  # this text's TYPE lines
    helps: dict[str, str] = {}
    refused: set[str] = set()  # families of this text whose samples are left out
    bad = 0
    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            match = _DECLARATION.fullmatch(stripped)
            if match is None:
                continue  # a comment
            name, rest = match["name"], (match["rest"] or "").strip()
            if match["what"] == "TYPE":
                if rest not in TYPES or name in declared:
                    bad += 1
                    refused.add(name)
                    continue
                declared[name] = rest
            else:
                helps.setdefault(name, rest)
            continue
        sample = parse_sample(stripped)
        if sample is None:
            bad += 1
            continue
        sample_name, labels = sample
        name = _family_of(sample_name, declared)
        if name.startswith(reserved) or name in refused:
            bad += 1
            continue
        kind = declared.get(name, "untyped")
        fam = merged.families.get(name)
        if fam is None:
            fam = merged.families[name] = Family(name, kind, helps.get(name))
        elif fam.kind != kind:
            bad += 1
            refused.add(name)
            continue
        key = sample_name + "{" + labels
        if key in fam.keys:
            continue  # the same series twice: served once
        fam.keys.add(key)
        fam.lines.append(stripped)
    if bad:
        merged.rejected[source] = merged.rejected.get(source, 0) + bad
