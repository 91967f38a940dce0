"""Lines in, lines out: splitting a service's output into lines, the pipes it is read from, the
writer that merges everything into PID 1's stdout and stderr, pyinit's own structured events,
Python's own reports as events, and S6_LOGGING's catch-all log directory.
"""
