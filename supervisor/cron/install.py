"""pys6-install-supercronic [DIR]: install pycrond under supercronic's name, on request only.

An image whose run script says `exec supercronic -json /etc/crontab` keeps it:
DIR/supercronic becomes a symbolic link to pycrond (DIR: where pycrond is
installed, by default). An existing `supercronic` that is not already such a link
is left alone unless --force is given, so a real supercronic is never replaced
by accident.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..base.links import console_script, install_link


def main(argv: Sequence[str] | None = None) -> None:
    from ..base.cli import hinted_parser

    parser = hinted_parser(prog="pys6-install-supercronic", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", nargs="?", metavar="DIR", help="where to put `supercronic` (default: beside pycrond)")
    parser.add_argument("--force", action="store_true", help="replace an existing supercronic")
    args = parser.parse_args(argv)
    pycrond = console_script("pycrond")
    if pycrond is None:
        parser.exit(1, "pys6-install-supercronic: pycrond is not installed (pip install pys6 first)\n")
    directory = Path(args.directory) if args.directory else pycrond.parent
    target = directory / "supercronic"
    problem = install_link(target, pycrond, args.force)
    if problem:
        parser.exit(1, f"pys6-install-supercronic: {problem}\n")
    print(f"{target} -> {pycrond}")


if __name__ == "__main__":
    main()
