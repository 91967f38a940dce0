"""The layering rule, from the real import graph: no circle, no upward arrow; nothing races the reaper."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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
OWN_PROCESS = {"notifylisten.py": {"os.waitpid"}, "tmuxstate.py": {"subprocess."},
               "s6clients.py": {"subprocess."}}  # s6-notifyoncheck's checker: a program of a service's


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


# Each module's layer: a module imports only from its own layer or below, and never in a circle.
LAYERS: dict[str, int] = {
    **dict.fromkeys(["model", "signames", "files", "paths", "protocol", "statusfmt", "lines", "cron.expression",
                     "cron.logrus", "links", "contenv", "s6getopt", "jsonwire", "listenaddr", "promtext",
                     "accepting"], 0),
    **dict.fromkeys(["policy", "config", "servicedir", "control", "cron.crontab", "cron.schedule", "cron.load",
                     "cron.install", "s6layout", "compat", "childenv", "s6commands", "s6status", "s6rc", "telemetry",
                     "procstats"], 1),
    **dict.fromkeys(["spawn", "reaper", "output", "logpipe", "log", "forensics", "dirwatch",
                     "notifylisten", "tmuxstate", "scanctl", "catchall", "supervisedir", "podmetrics", "metricshttp",
                     "signalqueue", "pyreports"], 2),
    **dict.fromkeys(["service", "handlers", "server", "cron.jobs", "cron.scheduler", "cron.metrics", "rcstages",
                     "metricsexport"], 3),
    **dict.fromkeys(["stages", "cron.daemon"], 4),
    **dict.fromkeys(["main_loop", "cron.main"], 5),
    **dict.fromkeys(["init", "__main__", "client", "svstat", "svc", "s6clients", "s6log"], 6),
}
CLIENT_MODULES = {"client", "svstat", "svc", "s6commands", "s6clients", "s6log"}
CLIENT_MAY_IMPORT = {"client", "protocol", "paths", "statusfmt", "signames", "svstat", "contenv", "links", "svc", "jsonwire",
                     "s6commands", "catchall", "s6getopt"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO / "supervisor").with_suffix("").parts
    return ".".join(parts[:-1]) if parts[-1] == "__init__" else ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path) -> set[str]:
    """Our modules that `path` imports, anywhere in it (lazy imports too), but for type checking only."""
    module = _module_name(path)
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                candidates = [target] + [f"{target}.{a.name}" if target else a.name for a in node.names]
            elif node.module and node.module.startswith("supervisor"):
                target = node.module.removeprefix("supervisor").lstrip(".")
                candidates = [target] + [f"{target}.{a.name}" if target else a.name for a in node.names]
            else:
                candidates = []
            found.update(c for c in candidates if c in LAYERS)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("supervisor."):
                    name = alias.name.removeprefix("supervisor.")
                    if name in LAYERS:
                        found.add(name)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    found.discard(module)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in (REPO / "supervisor").rglob("*.py")}
    return {name: _imports(path) for name, path in modules.items() if name in LAYERS}


def test_every_module_has_a_layer():
    modules = {_module_name(p) for p in (REPO / "supervisor").rglob("*.py")} - {"", "cron"}
    assert modules <= set(LAYERS), modules - set(LAYERS)


def test_no_import_points_up():
    upward = [f"{m} ({LAYERS[m]}) -> {d} ({LAYERS[d]})" for m, deps in _graph().items() for d in deps
              if LAYERS[d] > LAYERS[m]]
    assert upward == []


def test_no_import_circle():
    graph = _graph()
    circles = []

    def walk(node: str, path: list[str]) -> None:
        for dep in graph.get(node, ()):
            if dep in path:
                circles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif len(path) < 30:
                walk(dep, [*path, dep])

    for start in graph:
        walk(start, [start])
    assert circles == []


def test_the_clients_import_only_what_they_need():
    graph = _graph()
    for client_module in CLIENT_MODULES:
        assert graph[client_module] <= CLIENT_MAY_IMPORT, (client_module, graph[client_module] - CLIENT_MAY_IMPORT)
