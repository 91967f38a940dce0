"""pys6-install-supercronic [DIR]: install pycrond under supercronic's name, on request only.

An image whose run script says `exec supercronic -json /etc/crontab` keeps it:
DIR/supercronic becomes a symbolic link to pycrond (DIR: where pycrond is
installed, by default). An existing `supercronic` that is not already such a link
is left alone unless --force is given, so a real supercronic is never replaced
by accident.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path


def pycrond_path() -> Path | None:
    beside = Path(sys.executable).parent / "pycrond"  # the console script of this very installation
    if beside.exists():
        return beside
    found = shutil.which("pycrond")
    return Path(found) if found else None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pys6-install-supercronic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", nargs="?", metavar="DIR", help="where to put `supercronic` (default: beside pycrond)")
    parser.add_argument("--force", action="store_true", help="replace an existing supercronic")
    args = parser.parse_args(argv)
    pycrond = pycrond_path()
    if pycrond is None:
        parser.exit(1, "pys6-install-supercronic: pycrond is not installed (pip install pys6 first)\n")
    directory = Path(args.directory) if args.directory else pycrond.parent
    target = directory / "supercronic"
    if (target.exists() or target.is_symlink()) and not args.force and not (
            target.is_symlink() and Path(os.readlink(target)) == pycrond):
        parser.exit(1, f"pys6-install-supercronic: {target} exists and is not pycrond; --force replaces it\n")
    temporary = directory / ".supercronic.pys6-new"
    try:
        temporary.unlink(missing_ok=True)
        os.symlink(pycrond, temporary)
        os.replace(temporary, target)
    except OSError as exc:
        parser.exit(1, f"pys6-install-supercronic: cannot install {target}: {exc.strerror}\n")
    print(f"{target} -> {pycrond}")


if __name__ == "__main__":
    main()
