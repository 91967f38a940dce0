"""Reading crontab files from disk, safely, and parsing them: what pycrond loads.

Only regular files, opened without blocking and read up to 1 MiB (a FIFO or
/dev/zero in CRONTAB's place is an error, not a hang); a directory of crontabs
is read in byte order. The digest lets a reload skip an unchanged file unparsed.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping
from datetime import datetime, timezone, tzinfo
from zoneinfo import ZoneInfo

from ..base.files import read_regular_file
from .crontab import ParsedCrontab, parse_crontab

MAX_CRONTAB_BYTES = 1 << 20
MAX_CRONTAB_FILES = 1000
MAX_ZONE_FILE_BYTES = 1 << 20  # TZif files are a few KiB


def crontab_files(path: str) -> list[str]:
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if not n.startswith("."))
        files = [os.path.join(path, n) for n in names if os.path.isfile(os.path.join(path, n))]
        return files[:MAX_CRONTAB_FILES]
    return [path]


def read_crontab_texts(path: str) -> tuple[list[tuple[str, str]], str]:
    """Each crontab file with its text, and a digest of them all; OSError if one cannot be read.

    Only regular files, opened without blocking and read up to 1 MiB: a FIFO or
    /dev/zero in CRONTAB's place is an error, not a hang.
    """
    texts: list[tuple[str, str]] = []
    digest = hashlib.sha256()
    for file in crontab_files(path):
        data = read_regular_file(file, MAX_CRONTAB_BYTES)
        digest.update(file.encode() + b"\0" + data + b"\0")
        texts.append((file, data.decode("utf-8", "replace")))
    return texts, digest.hexdigest()


def _zone_file(path: str, key: str) -> tzinfo:
    """A TZif file read as every file pys6 reads: regular, bounded (a FIFO named by TZ is an error, not a hang)."""
    return ZoneInfo.from_file(io.BytesIO(read_regular_file(path, MAX_ZONE_FILE_BYTES)), key=key)


def local_zone(environ: Mapping[str, str] = os.environ) -> tzinfo:
    """The zone schedules follow without CRON_TZ, as Go's time.Local finds it: TZ, else /etc/localtime, else UTC."""
    name = environ.get("TZ")
    try:
        if name is None:
            return _zone_file("/etc/localtime", "localtime")
        name = name.removeprefix(":")
        if name in ("", "UTC"):
            return timezone.utc
        if name.startswith("/"):
            return _zone_file(name, name)
        return ZoneInfo(name)
    except (OSError, ValueError, KeyError):  # an unknown name: UTC, as Go does (ZoneInfoNotFoundError is a KeyError)
        return timezone.utc


def parse_crontab_texts(texts: list[tuple[str, str]], anchor: datetime, local: tzinfo | None = None) -> ParsedCrontab:
    local = local if local is not None else local_zone()
    parsed = ParsedCrontab()
    for file, text in texts:
        more = parse_crontab(text, file, anchor, first_position=len(parsed.jobs), local=local)
        parsed.jobs += more.jobs
        parsed.bad += more.bad
        parsed.notices += more.notices
    return parsed


def read_crontabs(path: str, anchor: datetime) -> tuple[ParsedCrontab, str]:
    """The parsed crontab(s) and a digest of the contents; OSError if unreadable."""
    texts, digest = read_crontab_texts(path)
    return parse_crontab_texts(texts, anchor), digest
