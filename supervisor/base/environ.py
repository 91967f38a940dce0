"""The environment this process was exec'd with, as the kernel keeps it.

Python's start-up changes its own os.environ (the C-locale coercion sets LC_CTYPE when the
locale is C or POSIX), and pyinit sets a few variables of its own; what a child inherits must
be what the process itself was given, as s6-overlay's C programs pass it on. /proc/self/environ
holds exactly that. Standard library only: with-contenv imports this.
"""


def exec_environment(path: str = "/proc/self/environ") -> dict[bytes, bytes] | None:
    """The environment this process was exec'd with, before Python's start-up changed its own
    (the C-locale coercion sets LC_CTYPE in os.environ); None where /proc cannot tell."""
    try:
        with open(path, "rb") as environ:
            data = environ.read()
    except OSError:
        return None
    found: dict[bytes, bytes] = {}
    for entry in data.split(b"\0"):
        name, equals, value = entry.partition(b"=")
        if equals and name and name not in found:  # the first of a duplicated name, as getenv finds it
            found[name] = value
    return found
