"""Programs the pod's own services run, never imported by pyinit: readiness from a listening port,
the tmux save and restore.
"""
