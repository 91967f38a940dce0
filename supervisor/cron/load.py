"""Reading crontab files from disk, safely, and parsing them: what pycrond loads.

Only regular files, opened without blocking and read up to 1 MiB (a FIFO or
/dev/zero in CRONTAB's place is an error, not a hang); a directory of crontabs
is read in byte order. The digest lets a reload skip an unchanged file unparsed.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime

from ..files import read_regular_file
from .crontab import BadLine, JobSpec, parse_crontab

MAX_CRONTAB_BYTES = 1 << 20
MAX_CRONTAB_FILES = 1000


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


def parse_crontab_texts(texts: list[tuple[str, str]], anchor: datetime) -> tuple[list[JobSpec], list[BadLine]]:
    jobs: list[JobSpec] = []
    bad: list[BadLine] = []
    for file, text in texts:
        more_jobs, more_bad = parse_crontab(text, file, anchor, first_position=len(jobs))
        jobs += more_jobs
        bad += more_bad
    return jobs, bad


def read_crontabs(path: str, anchor: datetime) -> tuple[list[JobSpec], list[BadLine], str]:
    """Jobs, bad lines and a digest of the contents; OSError if unreadable."""
    texts, digest = read_crontab_texts(path)
    jobs, bad = parse_crontab_texts(texts, anchor)
    return jobs, bad, digest


