"""Pure line handling for merged logs: split a byte stream into whole lines and prefix them.

Works on blocks of many lines at once so that adding the `[name] ` prefix costs one
bytes.replace per read, not one Python call per line.
"""

from __future__ import annotations

import json
from collections.abc import Callable

READ_SIZE = 65536
MAX_LINE = 65536  # longer lines are cut into pieces
CUT_MARK = b" [...]"  # ends every piece of a cut line but the last

Formatter = Callable[[bytes], bytes]


def text_formatter(prefix: bytes) -> Formatter:
    """`block` holds whole lines, each ending in \\n; return them prefixed."""
    joined = b"\n" + prefix

    def format_block(block: bytes) -> bytes:
        return prefix + block[:-1].replace(b"\n", joined) + b"\n"

    return format_block


def json_formatter(service: str, stream: str) -> Formatter:
    def format_block(block: bytes) -> bytes:
        out = []
        for line in block[:-1].split(b"\n"):
            record = {"service": service, "stream": stream, "message": line.decode("utf-8", "backslashreplace")}
            out.append(json.dumps(record, ensure_ascii=False))
        return ("\n".join(out) + "\n").encode("utf-8", "backslashreplace")

    return format_block


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
