"""What a fresh pysvstat or pysvc loads: its start-up is the interpreter's plus these modules, so
each one added here costs every status query and every probe (issue 13: at most 1.6 times
`python -c pass`, measured by bench/bench_control.py).

Each client runs from its installed script (bin/), against a live pyinit, on an interpreter
started without site's .pth hooks (an editable install's finder, for one, imports re and
pathlib at start-up and would hide them), with `import site` done first, as any
interpreter does at start-up: what is left is the client's own doing.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from harness import REPO, SLEEPER, Pod, read_int, wait_for

_DRIVER = """
import site, sys
started_with = set(sys.modules)
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, {repo!r})
try:
    exec(compile(open(script).read(), script, "exec"), {{"__name__": "__main__"}})
except SystemExit as exit:
    code = exit.code
else:
    code = 0
sys.stdout.flush()
sys.stderr.write("\\nMODULES " + " ".join(sorted(set(sys.modules) - started_with)) + "\\n")
sys.stderr.write("CODE " + str(code) + "\\n")
"""

# supervisor.base and supervisor.control are packages whose __init__ is a docstring alone.
_COMMON = {"_json", "_socket", "errno", "supervisor", "supervisor.base", "supervisor.base.terms",
           "supervisor.base.paths",
           "supervisor.control", "supervisor.control.client", "supervisor.control.protocol"}
SVSTAT_MODULES = _COMMON | {"supervisor.control.statusfmt", "supervisor.control.svstat"}
SVC_MODULES = _COMMON | {"supervisor.base.s6getopt", "supervisor.control.svc"}
# Each of these alone costs a fresh client milliseconds (enum, re, typing, inspect, selectors...).
# __future__ too: a plain interpreter (the image's, not a venv whose editable finder loads it)
# pays for it, so the modules a client loads write no `from __future__ import annotations`.
NEVER = {"__future__", "re", "enum", "typing", "dataclasses", "inspect", "argparse", "socket", "selectors", "json", "signal",
         "collections", "struct", "shlex", "pathlib", "asyncio", "anyio", "structlog", "psutil", "yaml"}


def _client(pod: Pod, script: str, *args: str) -> tuple[str, set[str], int]:
    done = subprocess.run([sys.executable, "-S", "-c", _DRIVER.format(repo=str(REPO)), str(REPO / "bin" / script),
                           *args], capture_output=True, text=True, timeout=30, cwd="/",
                          env={"PATH": "/usr/bin:/bin", "PYS6_RUNDIR": str(pod.rundir), "LANG": "C.UTF-8"})
    report = done.stderr.rsplit("\nMODULES ", 1)
    assert len(report) == 2, done.stderr
    modules_line, code_line = report[1].splitlines()[:2]
    return done.stdout, set(modules_line.split()), int(code_line.split()[1])


@pytest.fixture
def live(subreaper_pod: Pod) -> Pod:
    subreaper_pod.service("web", SLEEPER)
    subreaper_pod.start()
    subreaper_pod.wait_control()
    wait_for(lambda: read_int(subreaper_pod, "web.pid"), 10, "web to start")
    return subreaper_pod


@pytest.mark.parametrize("args", [(), ("web",)], ids=["all", "one"])
def test_pysvstat_loads_only_what_it_needs(live: Pod, args: tuple[str, ...]) -> None:
    out, modules, code = _client(live, "pysvstat", *args)
    assert code == 0 and out.startswith("up (pid " if args else "web: up (pid "), out
    assert modules == SVSTAT_MODULES, f"added: {sorted(modules - SVSTAT_MODULES)}, gone: {sorted(SVSTAT_MODULES - modules)}"


@pytest.mark.parametrize("args", [("-t", "web"), ("-wu", "-T", "1000", "web")], ids=["signal", "wait"])
def test_pysvc_loads_only_what_it_needs(live: Pod, args: tuple[str, ...]) -> None:
    pid = read_int(live, "web.pid")
    out, modules, code = _client(live, "pysvc", *args)
    assert code == 0 and out == ""
    assert modules == SVC_MODULES, f"added: {sorted(modules - SVC_MODULES)}, gone: {sorted(SVC_MODULES - modules)}"
    if args[0] == "-t":
        wait_for(lambda: read_int(live, "web.pid") not in (None, pid), 10, "web to be restarted after -t")


def test_the_json_and_check_paths_load_nothing_more(live: Pod) -> None:
    for args in (("--json",), ("--check",), ("-o", "up,pid,signal", "web")):
        _out, modules, code = _client(live, "pysvstat", *args)
        assert code == 0, args
        assert not modules & NEVER and modules <= SVSTAT_MODULES, (args, sorted(modules - SVSTAT_MODULES))


def test_the_client_scripts_import_nothing_but_their_main() -> None:
    """The scripts are not pip's entry-point wrappers (those import re) and stay that way; nor is
    pyinit's, whose start path is kept as lean (tests/test_head_start.py)."""
    for script, module in (("pysvstat", "supervisor.control.svstat"), ("pysvc", "supervisor.control.svc"),
                           ("pyinit", "supervisor.init")):
        path = REPO / "bin" / script
        assert path.read_text().startswith("#!python\n") and path.stat().st_mode & 0o111
        tree = ast.parse(path.read_text())
        imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
        assert [(node.module, [a.name for a in node.names]) for node in imports if isinstance(node, ast.ImportFrom)] \
            == [(module, ["main"])] and len(imports) == 1
    pyproject = (REPO / "pyproject.toml").read_text()
    assert 'script-files = ["bin/pyinit", "bin/pysvstat", "bin/pysvc"]' in pyproject
    assert not any(line.startswith(("pysvstat =", "pysvc =", "pyinit =")) for line in pyproject.splitlines())


def test_the_modules_a_client_loads_import_only_those() -> None:
    """Statically too: no client module names a costly module at its top level, so a new code path
    (an option no test above runs) cannot bring one in unseen."""
    for module in sorted((SVSTAT_MODULES | SVC_MODULES) - {"_json", "_socket", "errno"}):
        path = REPO / module.replace(".", "/")
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            costly = [name for name in names if name.split(".")[0] in NEVER]
            assert not costly, f"{module} imports {costly} at its top level"
