"""A service's own word on its status line: the note it keeps in its directory (pys6's addition).

A service that has something to say that its state cannot (pycrond: "crontab: 2
lines refused") writes one line to `status-note` in its service directory,
its working directory, which is the copy pyinit runs it from under /run (never
the image's tree). pysvstat shows that line after the service's state while
the service is up, and only a note written since it last went up: one left
by an earlier run, or copied in with the image's tree, says nothing about this
one. No file, an empty one, or one that is not a regular file: no note.

Nothing is added to any service's environment (s6-overlay's is PATH only), and
a service that never writes the file is as it was. The file is the service's
to write and pyinit's to read: it is opened without following a link and
without blocking, read up to NOTE_LIMIT bytes, and only its first line is
kept, with every character that could act on a terminal escaped.
"""

from __future__ import annotations

import os

from ..base.files import read_regular_file
from ..base.terms import NOTE_CHARS, cut, visible

NOTE_FILE = "status-note"
NOTE_LIMIT = 4096  # a bigger file is not a note: none is shown
STALE_SLACK = 0.05  # seconds: a file's mtime comes from a coarse clock, a little behind time.time()


def read_note(directory: str, directory_fd: int | None, up_since_wall: float) -> str | None:
    """The first line of the service's note, if written since `up_since_wall` (a time.time()); None when none."""
    try:
        if directory_fd is not None:
            info = os.stat(NOTE_FILE, dir_fd=directory_fd, follow_symlinks=False)
        else:
            info = os.stat(os.path.join(directory, NOTE_FILE), follow_symlinks=False)
        if info.st_mtime < up_since_wall - STALE_SLACK:
            return None
        if directory_fd is not None:
            data = read_regular_file(NOTE_FILE, NOTE_LIMIT, dir_fd=directory_fd, follow_symlinks=False)
        else:
            data = read_regular_file(os.path.join(directory, NOTE_FILE), NOTE_LIMIT, follow_symlinks=False)
    except OSError:
        return None
    line = data.decode("utf-8", "replace").split("\n", 1)[0].strip()
    if not line:
        return None
    return cut(visible(line), NOTE_CHARS)
