"""What a service's name may be: one rule for the wire, service directories and s6-rc's trees.

Standard library only, and no re: the clients import this.
"""

from __future__ import annotations

_NAME_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@")
_NAME_REST = _NAME_FIRST | frozenset(".+-")


def valid_name(name: str) -> bool:
    """Letters, digits and _ . @ + -, not starting with . + or -, at most 128 characters.

    Written out rather than as a regular expression: importing re costs the
    client CLIs milliseconds at every start.
    """
    return 0 < len(name) <= 128 and name[0] in _NAME_FIRST and all(c in _NAME_REST for c in name)
