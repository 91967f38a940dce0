"""Processes: the one place that spawns (posix_spawn into a new session with the log pipes), the
one owner of waitpid (the reaper), and signals for the event loop, for pyinit and pycrond alike.
"""
