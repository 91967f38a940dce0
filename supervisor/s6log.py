"""pys6-log: a logger for a service's `log/run` or an s6-rc consumer, for images without s6-log.

    pys6-log [nN] [sN] [T] [t] DIR

Reads its stdin (its service's stdout) and keeps DIR as s6-log keeps a log directory:
`current`, archived as @<TAI64N>.s once it would pass sN bytes (default 99999), at most nN
archives (default 10), each line stamped with a TAI64N label (t) and/or an ISO 8601 time
(T). Other s6-log directives are named once on stderr and not applied. Standard library only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from .catchall import CatchAllLog, parse_script

USAGE = "usage: pys6-log [nN] [sN] [T] [t] DIR\n"


def run(argv: Sequence[str]) -> int:
    words = [word for word in argv if not word.startswith("-")]  # s6-log's -b -p -l: nothing to do here
    directories = [word for word in words if word.startswith(("/", "."))]
    if len(directories) != 1:
        sys.stderr.write(USAGE)
        return 100
    directives = [word for word in words if word not in directories]
    keep, size, stamps, ignored = parse_script(" ".join(directives) or "n10 s99999")
    if not any(word.startswith("n") for word in directives):
        keep = 10
    if not any(word.startswith("s") for word in directives):
        size = 99999
    if ignored:
        sys.stderr.write(f"pys6-log: warning: not applied: {' '.join(ignored)[:200]}\n")
    try:
        log = CatchAllLog(directories[0], keep, size, stamps)
    except OSError as exc:
        sys.stderr.write(f"pys6-log: fatal: unable to use {directories[0]}: {exc.strerror}\n")
        return 111
    while True:
        try:
            data = os.read(0, 65536)
        except InterruptedError:
            continue
        if not data:
            return 0
        log.write(1, data)


def main() -> None:
    sys.exit(run(sys.argv[1:]))
