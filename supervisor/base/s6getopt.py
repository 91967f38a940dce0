"""s6's command-line syntax (skalibs' subgetopt), shared by the client CLIs. Standard library only.

Options are single letters, grouped (`-dk`); a letter that takes a value takes the rest of
its group or the next argument (`-T 500`, `-T500`); `--` ends the options. A letter in
`one_letter` takes just the next letter as its value (pysvc's `-wu`, `-wud`).
"""

TYPE_CHECKING = False  # no collections.abc at run time: the client CLIs must start fast
if TYPE_CHECKING:
    from collections.abc import Sequence


class UsageError(Exception):
    pass


def parse(argv: "Sequence[str]", takes_value: str = "", one_letter: str = "",
          stop_at_operand: bool = False) -> tuple[list[tuple[str, str]], list[str]]:
    """(options as (letter, value or ""), operands). With `stop_at_operand`, the first operand
    and everything after it are operands (a program to run, as s6-notifyoncheck's)."""
    options: list[tuple[str, str]] = []
    operands: list[str] = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--":
            operands += args
            break
        if not arg.startswith("-") or arg == "-":
            operands.append(arg)
            if stop_at_operand:
                operands += args
                break
            continue
        letters = arg[1:]
        while letters:
            letter, letters = letters[0], letters[1:]
            if letter in one_letter:
                if not letters:
                    raise UsageError(f"-{letter} needs a letter after it")
                options.append((letter, letters[0]))
                letters = letters[1:]
            elif letter in takes_value:
                value = letters or (args.pop(0) if args else "")
                letters = ""
                if not value:
                    raise UsageError(f"-{letter} needs a value")
                options.append((letter, value))
            else:
                options.append((letter, ""))
    return options, operands
