"""Pure line handling for merged logs: split a byte stream into whole lines and prefix them.

Works on blocks of many lines at once so that adding the `[name] ` prefix costs one
bytes.replace per read, not one Python call per line.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections import deque
from collections.abc import Callable, Iterable

READ_SIZE = 65536
MAX_LINE = 65536  # longer lines are cut into pieces
CUT_MARK = b" [...]"  # ends every piece of a cut line but the last

# Whole lines (each ending in \n) -> what is written for them, and how many they were: a count
# the formatter gets for nothing (a text block's grows by one prefix a line), where counting
# them again would cost a second pass over every block.
Formatter = Callable[[bytes], tuple[bytes, int]]


# What could make a line display as another's: C0 controls but TAB and the line's
# own newline (a carriage return, a backspace, a vertical tab...), DEL, every
# escape sequence but SGR (colours survive), C1 controls in UTF-8 (NEL...) and
# U+2028/U+2029. Each is written as a visible escape: \\x0d, \\x1b, \\u2028.
_SUSPECT = bytes([*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F, 0xC2, 0xE2])
# Every suspect byte to 0 (0 is one), every other to itself: one translate and one memchr find a
# suspect byte in a block faster than a translate that deletes them (no search for each deleted).
_TO_ZERO = bytes(0 if byte in _SUSPECT else byte for byte in range(256))


@functools.cache
def _display_hazard() -> re.Pattern[bytes]:
    """Compiled at the first block that needs it: most boots never see one."""
    return re.compile(
        rb"(?P<eol>\r(?=\n)|\r\Z)|\x1b\[[0-9;:]*m|[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]")


def _escape(match: re.Match[bytes]) -> bytes:
    found = match.group()
    if match.lastgroup == "eol":
        return b""  # a CRLF line ending (sshd -e writes them): the line ends there, nothing is overwritten
    if found[0] == 0x1B and len(found) > 1:
        return found  # SGR: colours
    if found[0] == 0xE2:
        return b"\\u%04x" % (0x2000 + (found[2] & 0x3F))
    return b"\\x%02x" % (found[1] if found[0] == 0xC2 else found[0])


def displayable(text: bytes) -> bytes:
    """Lines that can only ever display as themselves (newlines are left alone).

    The fast path is one C-level pass: most blocks hold none of the suspect bytes
    (0xC2 and 0xE2 lead many ordinary UTF-8 characters, so they only send a block
    to the slow path, which leaves them be).
    """
    if text.translate(_TO_ZERO).find(0) < 0:
        return text
    return _display_hazard().sub(_escape, text)


def text_formatter(prefix: bytes) -> Formatter:
    """`block` holds whole lines, each ending in \\n; return them prefixed, each displayable as itself."""
    joined = b"\n" + prefix

    def format_block(block: bytes) -> tuple[bytes, int]:
        shown = displayable(block)
        out = prefix + shown[:-1].replace(b"\n", joined) + b"\n"
        if shown is block:  # unchanged: it grew by one prefix a line
            return out, (len(out) - len(block)) // len(prefix) if prefix else block.count(b"\n")
        return out, block.count(b"\n")

    return format_block


def record_formatter(**fields: object) -> Formatter:
    """JSON lines: each line of the block as {**fields, "message": line} (invalid UTF-8 as \\xNN)."""

    def format_block(block: bytes) -> tuple[bytes, int]:
        out = []
        for line in block[:-1].split(b"\n"):
            record = {**fields, "message": line.decode("utf-8", "backslashreplace")}
            out.append(json.dumps(record, ensure_ascii=False))
        return ("\n".join(out) + "\n").encode("utf-8", "backslashreplace"), len(out)

    return format_block


def json_formatter(service: str, stream: str) -> Formatter:
    return record_formatter(service=service, stream=stream)


class LineSplitter:
    """Turns chunks of a byte stream into whole lines; keeps the unfinished tail.

    Invariant: the tail is never longer than max_line, and a chunk is cut to at
    most max_line, so only the line that began in the tail can be too long: the
    lines wholly inside a chunk never need checking.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self.tail = b""

    def _cut(self, line: bytes) -> tuple[list[bytes], bytes]:
        """Pieces of `line` to emit now (each marked), and what is left over."""
        pieces = []
        while len(line) > self.max_line:
            pieces.append(line[: self.max_line] + CUT_MARK + b"\n")
            line = line[self.max_line :]
        return pieces, line

    def feed(self, chunk: bytes) -> bytes:
        """Return the whole lines (each with its \\n) that `chunk` completes."""
        if len(chunk) > self.max_line:
            step = self.max_line
            return b"".join(self.feed(chunk[i : i + step]) for i in range(0, len(chunk), step))
        if not self.tail:  # the usual case, a read that began at a line's start: no copy of the whole
            end = chunk.rfind(b"\n") + 1
            self.tail = chunk[end:]
            return chunk if end == len(chunk) else chunk[:end]
        first_newline = chunk.find(b"\n")
        if first_newline < 0:
            pieces, self.tail = self._cut(self.tail + chunk)
            return b"".join(pieces)
        pieces, rest = self._cut(self.tail + chunk[:first_newline])
        last_newline = chunk.rfind(b"\n")
        self.tail = chunk[last_newline + 1 :]
        return b"".join(pieces) + rest + chunk[first_newline : last_newline + 1]

    def flush(self) -> bytes:
        """The unfinished last line, completed, or nothing."""
        tail, self.tail = self.tail, b""
        return tail + b"\n" if tail else b""


RECENT_LINES = 1000  # per service, for pysvstat --log and forensics...
RECENT_BYTES = 128 * 1024  # ...and at most this many bytes of them (the newest line is always kept)


_NO_BLOCKS: deque[tuple[str, bytes, int, float]] = deque(maxlen=0)  # shared, and never appended to

# Told of every block as it is kept: (stream, whole lines, their count, arrival time). Called on the
# log's hot path from the pipe's reader: it must be quick and must not raise (one that does is dropped).
Follower = Callable[[str, bytes, int, float], None]


class RecentLines:
    """A service's last lines, bounded by count and by bytes: 1,000 lines of 64 KiB would be 64 MB.

    Kept as the blocks they were read in (one bytes object per read), and split into lines only
    when someone asks (pysvstat --log, forensics): splitting every block on the log's hot path
    cost a Python object per line, a quarter of pyinit's time on a busy log. A block is dropped
    once the newer ones hold enough lines or bytes by themselves, so `tail` sees exactly the
    lines a line-by-line ring would keep.

    Each block keeps the wall-clock time it arrived (pysvstat --log --timestamps): one float per
    block, not per line, 32 bytes a block with its tuple slot (tests/test_log_follow.py measures it).
    Followers (pysvstat --log -f) are told of each block as it is kept: no one polls the ring.
    """

    def __init__(self, max_lines: int = RECENT_LINES, max_bytes: int = RECENT_BYTES) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._blocks: deque[tuple[str, bytes, int, float]] = _NO_BLOCKS  # (stream, lines, count, arrival)
        self._lines = 0  # in the blocks kept
        self._size = 0  # bytes of those lines, newlines not counted
        self._followers: tuple[Follower, ...] = ()  # a tuple: iterating an empty one costs nothing

    def add_block(self, stream: str, block: bytes, count: int | None = None, when: float | None = None) -> None:
        """`block` holds whole lines, each ending in \\n; `count` is their number, when the caller knows it;
        `when` the wall-clock time they arrived (now, when not given)."""
        if count is None:
            count = block.count(b"\n")
        if not count:
            return
        if when is None:
            when = time.time()
        if self._blocks is _NO_BLOCKS:
            self._blocks = deque()  # its own at the first line: an empty deque is 600 bytes
        self._blocks.append((stream, block, count, when))
        self._lines += count
        self._size += len(block) - count
        while len(self._blocks) > 1:
            _stream, oldest, lines, _when = self._blocks[0]
            if self._lines - lines < self.max_lines and self._size - (len(oldest) - lines) <= self.max_bytes:
                break  # the newer blocks alone are not enough
            self._blocks.popleft()
            self._lines -= lines
            self._size -= len(oldest) - lines
        for follower in self._followers:
            try:
                follower(stream, block, count, when)
            except Exception:  # noqa: BLE001 (a follower's bug must not stop the log, nor PID 1)
                self.unfollow(follower)

    def follow(self, follower: Follower) -> None:
        """Tell `follower` of every block kept from now on, until unfollow()."""
        self._followers = (*self._followers, follower)

    def unfollow(self, follower: Follower) -> None:
        self._followers = tuple(f for f in self._followers if f is not follower)

    @property
    def followers(self) -> int:
        return len(self._followers)

    def extend(self, stream: str, lines: Iterable[bytes]) -> None:
        """Lines without their newline (for callers that hold single lines)."""
        self.add_block(stream, b"".join(line + b"\n" for line in lines))

    def _kept(self) -> list[tuple[str, bytes, float]]:
        """Newest first: the lines a ring of max_lines and max_bytes keeps (the newest always)."""
        kept: list[tuple[str, bytes, float]] = []
        size = 0
        for stream, block, _count, when in reversed(self._blocks):
            for line in reversed(block[:-1].split(b"\n")):
                if kept and (len(kept) >= self.max_lines or size + len(line) > self.max_bytes):
                    return kept
                kept.append((stream, line, when))
                size += len(line)
        return kept

    def tail(self, count: int) -> list[tuple[str, bytes]]:
        return [(stream, line) for stream, line, _when in self.timed_tail(count)]

    def timed_tail(self, count: int) -> list[tuple[str, bytes, float]]:
        """The last `count` lines kept, oldest first, each with the time it arrived."""
        if count <= 0:
            return []
        kept = self._kept()
        return kept[:count][::-1]

    def __len__(self) -> int:
        return len(self._kept())
