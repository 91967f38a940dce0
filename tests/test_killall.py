"""proc.killall, the one kill-everything: real processes, in a throwaway subreaper (a fresh
interpreter, so the test runner never adopts anyone's orphans)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness import REPO

_SUBREAPER = """
import json, sys, time
import anyio
from supervisor.proc.killall import kill_everyone, kill_everyone_now
from supervisor.proc.reaper import Reaper, become_subreaper
from supervisor.proc.spawn import spawn

class Said:
    def __init__(self): self.events = []
    def info(self, event, **kw): self.events.append(("info", event))
    def warning(self, event, **kw): self.events.append(("warning", event))

become_subreaper()
# Two daemons left behind by a shell that is gone: one obeys SIGTERM, one ignores it.
leaver = spawn(["/bin/sh", "-c", "sleep 60 & (trap '' TERM; exec sleep 61) & exit 0"])
mode = sys.argv[1]
reaper, said = Reaper(), Said()
time.sleep(0.2)  # the daemons are started and adopted

async def main():
    async with anyio.create_task_group() as group:
        async def signal_loop():  # pyinit's and pycrond's reap at each SIGCHLD; polling stands in here
            while True:
                reaper.reap()
                await anyio.sleep(0.02)
        group.start_soon(signal_loop)
        await kill_everyone(reaper, False, 0.3, 5.0, log=said)
        group.cancel_scope.cancel()
started = time.monotonic()
if mode == "loop":
    anyio.run(main)
else:
    kill_everyone_now(False, 0.3, 5.0)
print(json.dumps({"events": said.events, "left": reaper.has_children(), "seconds": time.monotonic() - started}))
"""


@pytest.mark.parametrize("mode", ["loop", "now"])
def test_everyone_left_is_termed_then_killed_and_reaped(mode: str):
    done = subprocess.run([sys.executable, "-c", _SUBREAPER, mode], capture_output=True, text=True,
                          timeout=30, cwd=str(REPO))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["left"] is False
    assert 0.3 <= report["seconds"] < 5.0  # the TERM-ignoring one outlived the grace, not the KILL
    if mode == "loop":
        assert report["events"] == [["info", "sending SIGTERM to remaining processes"],
                                    ["warning", "sending SIGKILL to remaining processes"]]


def test_nothing_is_sent_nor_said_when_no_child_is_left():
    script = """
import anyio
from supervisor.proc.killall import kill_everyone
from supervisor.proc.reaper import Reaper
said = []
class Said:
    def info(self, event, **kw): said.append(event)
    warning = info
anyio.run(kill_everyone, Reaper(), False, 5.0, 5.0, Said())
print(said)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, cwd=str(REPO))
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
