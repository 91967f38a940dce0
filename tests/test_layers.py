"""The layering rule: pure modules do no I/O libraries; nothing races the reaper."""

from __future__ import annotations

import subprocess
import sys

from harness import REPO

PURE = ["supervisor.model", "supervisor.policy", "supervisor.config", "supervisor.servicedir",
        "supervisor.lines", "supervisor.paths"]


def modules_after_import(module: str) -> set[str]:
    code = f"import sys; import {module}; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO), check=True)
    return set(result.stdout.split())


def test_pure_modules_load_no_anyio_no_subprocess_no_structlog():
    for module in PURE:
        loaded = modules_after_import(module)
        assert not {"anyio", "subprocess", "structlog", "asyncio", "psutil"} & loaded, module


# Programs that run in a service's process, never in pyinit's: they may wait for their own children.
OWN_PROCESS = {"notifylisten.py": {"os.waitpid"}, "tmuxstate.py": {"subprocess."}}


def test_no_module_of_ours_calls_waitpid_or_popen_wait_but_the_reaper():
    offenders = []
    for path in (REPO / "supervisor").rglob("*.py"):
        text = path.read_text()
        for needle in ("os.waitpid", "os.waitid", "os.wait(", ".wait4(", "subprocess.", "create_subprocess", "open_process"):
            if needle in text and path.name != "reaper.py" and needle not in OWN_PROCESS.get(path.name, set()):
                offenders.append(f"{path.name}: {needle}")
    assert offenders == []


def test_the_programs_that_wait_are_never_imported_by_pyinit():
    loaded = modules_after_import("supervisor.main_loop") | modules_after_import("supervisor.init")
    assert not {"supervisor.notifylisten", "supervisor.tmuxstate"} & loaded
