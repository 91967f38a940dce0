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

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*\s*=\s*"(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(
    rf"(?P<name>{_NAME})\s*(?P<labels>\{{\s*(?:{_LABEL}\s*(?:,\s*{_LABEL}\s*)*,?\s*)?\}})?"
    r"\s+(?P<value>[^\s]+)(?:\s+(?P<stamp>-?\d{1,19}))?\s*"
)
_DECLARATION = re.compile(rf"#\s+(?P<what>HELP|TYPE)\s+(?P<name>{_NAME})(?:\s+(?P<rest>.*))?")
_VALUES = re.compile(r"[+-]?(?:Inf|inf|NaN|nan|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")


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
        match = _SAMPLE.fullmatch(stripped)
        if match is None or not _VALUES.fullmatch(match["value"]):
            bad += 1
            continue
        name = _family_of(match["name"], declared)
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
        key = match["name"] + _canonical_labels(match["labels"] or "")
        if key in fam.keys:
            continue  # the same series twice: served once
        fam.keys.add(key)
        fam.lines.append(stripped)
    if bad:
        merged.rejected[source] = merged.rejected.get(source, 0) + bad


_PAIR = re.compile(rf'\s*({_NAME})\s*=\s*"((?:[^"\\\n]|\\[\\"n])*)"\s*,?')


def _canonical_labels(text: str) -> str:
    return ",".join(sorted(f"{key}={value}" for key, value in _PAIR.findall(text[1:-1]))) if text else ""
