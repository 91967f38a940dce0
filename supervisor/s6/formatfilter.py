"""pys6's s6-format-filter, for images that removed s6-overlay (linked as `s6-format-filter` by
`pyinit --install-s6-commands`): a log pipeline's `s6-format-filter "FORMAT" ARGS... | s6-log ...`.

    s6-format-filter FORMAT [ARGS...]

For every line on stdin, FORMAT on stdout with `%s` replaced by the line (without its newline), `%0`
by the name the program was started under (s6's argv[0]; here, started by its `#!` line, the path it
was found at: the kernel does not pass on the name a PATH search was given), `%1`..`%9` by ARGS
(only as many as given; more than nine are ignored) and `%%` by `%`. As s6-portable-utils' (measured
against its 2.3.1.2 build, the one s6-overlay 3.2.3.2 ships): any other `%` sequence, or a `%`
ending FORMAT, is refused before any input is read (exit 111); there are no backslash escapes (`\\n`
is two characters); a line is cut at its first NUL byte (s6's lines are C strings); a last line
without a newline is written without one. What a read brought is written before the next read (s6
flushes its buffered stdout before a read that would wait). Standard library only: it starts in
every such pipeline.
"""

import os
import sys
from collections.abc import Sequence

from ..base.terms import EXIT_SYSTEM, EXIT_USAGE

PROGRAM = "s6-format-filter"
USAGE = "s6-format-filter format [ args... ]"
READ_SIZE = 65536


class FormatError(ValueError):
    """FORMAT holds a `%` sequence s6-format-filter does not know (or ends with `%`)."""


def compile_format(format_: bytes, names: int) -> list[bytes | int]:
    """FORMAT as literal pieces and substitution slots: -1 for `%s`, 0..names for `%0`..`%<names>`."""
    pieces: list[bytes | int] = []
    literal = bytearray()
    i = 0
    while i < len(format_):
        byte = format_[i]
        if byte != 0x25:  # '%'
            literal.append(byte)
            i += 1
            continue
        if i + 1 >= len(format_):
            raise FormatError("a % ends the format")
        following = format_[i + 1]
        if following == 0x25:
            literal.append(0x25)
        else:
            if following == 0x73:  # 's'
                slot = -1
            elif 0x30 <= following <= 0x30 + names:  # '0' (the name) up to the last digit given
                slot = following - 0x30
            else:
                raise FormatError(f"%{chr(following)} is not a known sequence")
            if literal:
                pieces.append(bytes(literal))
                literal.clear()
            pieces.append(slot)
        i += 2
    if literal:
        pieces.append(bytes(literal))
    return pieces


def render(pieces: list[bytes | int], line: bytes, args: Sequence[bytes]) -> bytes:
    line = line.split(b"\0", 1)[0]  # s6's line is a C string: what follows a NUL is not seen
    return b"".join(piece if isinstance(piece, bytes) else (line if piece == -1 else args[piece])
                    for piece in pieces)


def _write_all(data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(1, view):]
        except InterruptedError:
            continue


def run(argv0: str, argv: Sequence[str]) -> int:
    if not argv:
        sys.stderr.write(f"{PROGRAM}: usage: {USAGE}\n")
        return EXIT_USAGE
    args = [os.fsencode(argv0)] + [os.fsencode(arg).split(b"\0", 1)[0] for arg in argv[1:10]]
    try:
        pieces = compile_format(os.fsencode(argv[0]), len(args) - 1)
    except FormatError:
        sys.stderr.write(f"{PROGRAM}: fatal: unable to compile format: Invalid argument\n")
        return EXIT_SYSTEM
    pending: list[bytes] = []  # the start of a line still coming, in reads: joined once it ends
    while True:
        try:
            data = os.read(0, READ_SIZE)
        except InterruptedError:
            continue
        except OSError as exc:
            sys.stderr.write(f"{PROGRAM}: fatal: unable to read from stdin: {exc.strerror}\n")
            return EXIT_SYSTEM
        if not data:
            break
        if b"\n" not in data:  # a long line: kept in pieces, not copied whole at every read
            pending.append(data)
            continue
        lines = b"".join([*pending, data]).split(b"\n")
        pending = [lines.pop()]  # what follows the last newline
        if lines:
            try:
                _write_all(b"".join(render(pieces, line, args) + b"\n" for line in lines))
            except OSError as exc:
                sys.stderr.write(f"{PROGRAM}: fatal: unable to write to stdout: {exc.strerror}\n")
                return EXIT_SYSTEM
    rest = b"".join(pending)
    if rest:
        try:
            _write_all(render(pieces, rest, args))  # the last line as it came: no newline added
        except OSError as exc:
            sys.stderr.write(f"{PROGRAM}: fatal: unable to write to stdout: {exc.strerror}\n")
            return EXIT_SYSTEM
    return 0


def main() -> None:
    argv = sys.argv[1:]
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else PROGRAM
    if os.path.basename(argv0).startswith("pys6-"):  # under pys6's own name, --help/--version as every pys6 command
        from ..base import cli

        answered = cli.answer(argv, "pys6-format-filter", "usage: pys6-format-filter FORMAT [ARGS...]  (as "
                              "s6-format-filter: FORMAT per stdin line, %s the line, %0-%9 the name and ARGS, %% a %)")
        if answered is not None:
            sys.exit(answered)
        if argv and argv[0].startswith("--"):  # every pys6 command refuses an option it does not know
            if argv[0] != "--":
                sys.exit(cli.usage_error("pys6-format-filter", f"unknown option {argv[0][:100]!r}"))
            argv = argv[1:]  # `--` ends the options: a format may then start with `--`
    # Under s6's name there are no options: s6-format-filter takes `--help` as its format.
    sys.exit(run(argv0, argv))
