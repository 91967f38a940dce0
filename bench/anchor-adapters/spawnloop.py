"""spawnloop: the floor for start-up. A Python PID 1 that only posix_spawns every service once, then reaps.

An adapter for ../shared/anchor-bench (copy it into a copy of that bench's adapters/ directory):
no supervisor that spawns its services from one process can start them faster than this on the
same machine, so it shows which start-up targets are reachable at all.
"""
import sys

from . import Adapter

CODE = r'''
import os, signal, sys
scripts = sys.argv[1:]
for s in scripts:
    os.posix_spawn(s, [s], os.environ, setsid=True)
signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
while True:
    try:
        os.wait()
    except ChildProcessError:
        signal.pause()
'''


class SpawnLoop(Adapter):
    name = "spawnloop"
    order = 90
    benches = {"memory"}

    def setup(self, d, services):
        pass

    def argv(self, d, services):
        return [sys.executable, "-S", "-c", CODE, *[s.script for s in services]]


ADAPTER = SpawnLoop()
