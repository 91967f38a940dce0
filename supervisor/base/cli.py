"""What every pys6 command does with --help, --version and an option it does not know (issue 25):
usage on stdout (exit 0), the distribution's version, or one line on stderr with a hint (exit 100,
s6's usage code), touching nothing. Commands that also answer under s6's names (s6-svc, s6-log,
halt, ...) answer as s6's own programs there. Standard library only: shebangs and probes pay for
every module a command loads.
"""

import os
import sys

from .. import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    import typing
    from collections.abc import Sequence

EXIT_USAGE = 100


def invoked_as() -> str:
    """The name this process was started under (a link's name, for `pyinit --install-s6-commands`'s)."""
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""


def own_name() -> bool:
    """Started under pys6's own name (pys6-s6-svc), not an s6 program's (s6-svc) it stands in for."""
    return invoked_as().startswith("pys6-")


def answer(argv: "Sequence[str]", program: str, usage: str, help_flags: "Sequence[str]" = ("-h", "--help")) -> int | None:
    """0 once --help or --version (the first argument) is answered on stdout; None for anything else."""
    if argv and argv[0] in help_flags:
        sys.stdout.write(usage if usage.endswith("\n") else usage + "\n")
        return 0
    if argv and argv[0] == "--version":
        sys.stdout.write(f"{program} (pys6) {__version__}\n")
        return 0
    return None


def usage_error(program: str, problem: str, code: int = EXIT_USAGE) -> int:
    sys.stderr.write(f"{program}: usage: {problem}; try {program} --help\n")
    return code


def hinted_parser(*, code: int = EXIT_USAGE, version: bool = True, **options: object) -> "argparse.ArgumentParser":
    """An argparse parser whose usage errors exit `code` with the try-help hint, and, with `version`,
    a --version; argparse is imported here only (the fast commands above never load it)."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> "typing.NoReturn":
            self.print_usage(sys.stderr)
            self.exit(code, f"{self.prog}: error: {message}; try {self.prog} --help\n")

    parser = Parser(**options)  # type: ignore[arg-type]
    if version:
        parser.add_argument("--version", action="version", version=f"%(prog)s (pys6) {__version__}")
    return parser
