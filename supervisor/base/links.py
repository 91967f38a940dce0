"""Opt-in links that give pys6's commands other programs' names (supercronic, with-contenv, ...).

A name is replaced only when it is missing or already a link to the command it should
be (a re-run), unless forced: a real program of that name is never shadowed by accident.
Standard library only.
"""

import os
import shutil
import sys
from pathlib import Path


def console_script(name: str) -> Path | None:
    """Where this installation's console script `name` is: beside the interpreter, else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    return Path(found) if found else None


def install_link(link: Path, target: Path, force: bool) -> str | None:
    """Make `link` point at `target`; the reason it was not done, if it was not."""
    ours = link.is_symlink() and Path(os.readlink(link)) == target
    if (link.exists() or link.is_symlink()) and not ours and not force:
        return f"{link} exists and is not pys6's; --force replaces it"
    temporary = link.parent / f".{link.name}.pys6-new"
    try:
        temporary.unlink(missing_ok=True)
        os.symlink(target, temporary)
        os.replace(temporary, link)
    except OSError as exc:
        return f"cannot install {link}: {exc.strerror}"
    return None
