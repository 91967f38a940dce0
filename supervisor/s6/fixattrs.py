"""What pyinit does at boot for s6-overlay images beyond cont-init.d: v2's fix-attrs.d, and
one warning naming what it finds under /etc/s6-overlay besides s6-rc.d and user-bundles.d.

fix-attrs.d lines are s6-overlay's: `PATHS RECURSE ACCOUNT[,UID:GID] FMODE DMODE`, where
PATHS is a glob, RECURSE true or false, ACCOUNT `user` (its own group) or `user:group`,
the optional UID:GID what to use when the account does not exist, FMODE and DMODE the
octal modes for files and directories.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False

if TYPE_CHECKING:
    from ..logs.events import Logger

MAX_FIX_FILE_BYTES = 1 << 20
MAX_FIXED_ENTRIES = 1_000_000


class FixError(Exception):
    pass


def _account(entry: str) -> tuple[int, int]:
    import grp
    import pwd

    account, _, fallback = entry.partition(",")
    user, colon, group = account.partition(":")
    try:
        record = pwd.getpwnam(user) if not user.isdecimal() else pwd.getpwuid(int(user))
        uid, gid = record.pw_uid, record.pw_gid
        if colon:
            gid = int(group) if group.isdecimal() else grp.getgrnam(group).gr_gid
        return uid, gid
    except KeyError:
        if not fallback:
            raise FixError(f"no account {account!r} and no uid:gid to fall back to") from None
    uid_text, _, gid_text = fallback.partition(":")
    if not uid_text.isdecimal() or not gid_text.isdecimal():
        raise FixError(f"fallback {fallback!r} is not uid:gid")
    return int(uid_text), int(gid_text)


def _mode(text: str) -> int:
    if not text or any(c not in "01234567" for c in text) or len(text) > 4:
        raise FixError(f"mode {text!r} is not octal")
    return int(text, 8)


def _apply(path: str, recurse: bool, uid: int, gid: int, fmode: int, dmode: int, hidden: bool, budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise FixError("too many entries")
    os.lchown(path, uid, gid)
    if os.path.islink(path):
        return  # a link's target is not its to change
    if os.path.isdir(path):
        os.chmod(path, dmode)
        if recurse:
            for name in sorted(os.listdir(path)):
                if hidden or not name.startswith("."):
                    _apply(os.path.join(path, name), recurse, uid, gid, fmode, dmode, hidden, budget)
    else:
        os.chmod(path, fmode)


def fix_line(line: str, hidden: bool) -> None:
    fields = line.split()
    if len(fields) != 5:
        raise FixError("needs five fields: paths recurse account fmode dmode")
    pattern, recurse, entry, fmode_text, dmode_text = fields
    uid, gid = _account(entry)
    fmode, dmode = _mode(fmode_text), _mode(dmode_text)
    import glob  # only for a fix-attrs.d tree

    paths = sorted(glob.glob(pattern, include_hidden=hidden)) or [pattern]
    budget = [MAX_FIXED_ENTRIES]
    for path in paths:
        try:
            _apply(path, recurse == "true", uid, gid, fmode, dmode, hidden, budget)
        except OSError as exc:
            raise FixError(f"{exc.filename or path}: {exc.strerror}") from None
        except RecursionError:
            raise FixError(f"{path}: nested too deep") from None


def apply_fix_attrs(directory: str, hidden: bool, log: Logger) -> list[str]:
    """Every file of fix-attrs.d in byte order, every line; the failures, each logged."""
    from ..base.files import read_regular_file

    try:
        names = sorted(name for name in os.listdir(directory) if not name.startswith("."))
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.error("cannot read fix-attrs.d", directory=directory, reason=exc.strerror)
        return [directory]
    if names:
        log.warning("fix-attrs.d is deprecated in s6-overlay; pyinit still applies it", directory=directory)
    failures = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            text = read_regular_file(path, MAX_FIX_FILE_BYTES).decode("utf-8", "replace")
        except (OSError, ValueError) as exc:
            log.error("fix-attrs file unreadable", file=path, reason=str(exc))
            failures.append(path)
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                fix_line(line, hidden)
            except FixError as exc:
                log.error("fix-attrs line failed", file=path, line=number, reason=str(exc))
                failures.append(f"{path}:{number}")
    return failures


def report_unhandled_trees(etc: str, log: Logger) -> None:
    """One warning naming what /etc/s6-overlay holds that pyinit does not run."""
    base = os.path.join(etc, "s6-overlay")
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return
    found = []
    for entry in entries:
        path = os.path.join(base, entry)
        if entry in ("s6-rc.d", "user-bundles.d") and os.path.isdir(path):
            continue  # s6-rc's source definitions and bundles: run by rcstages
        if entry == "scripts" and os.path.isdir(path):
            continue  # s6-overlay's documented place for what s6-rc.d's up and run files call: run by them
        if not entry.startswith("."):
            found.append(f"{entry} not read")
    if found:
        log.warning("/etc/s6-overlay holds what pyinit does not handle", directory=base, found="; ".join(found))
