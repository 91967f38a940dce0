"""The container's life in order, as s6-overlay's /init runs it: stage 1 (cont-init), the services,
the main program, stage 3 (cont-finish and the stop).
"""
