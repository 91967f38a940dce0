"""pys6: a Python PID 1 for containers, a drop-in replacement for s6-overlay's /init."""

__version__ = "0.1.0"
