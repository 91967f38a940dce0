"""The layering rule, from the real import graph: no circle, no upward arrow; nothing races the reaper."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from harness import REPO

PURE = ["supervisor.core.model", "supervisor.core.policy", "supervisor.core.settings", "supervisor.core.servicedir",
        "supervisor.logs.lines", "supervisor.base.paths"]


def modules_after_import(module: str) -> set[str]:
    code = f"import sys; import {module}; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO), check=True)
    return set(result.stdout.split())


def test_pure_modules_load_no_anyio_no_subprocess_no_structlog():
    for module in PURE:
        loaded = modules_after_import(module)
        assert not {"anyio", "subprocess", "structlog", "asyncio", "psutil"} & loaded, module


# Programs that run in a service's process, never in pyinit's: they may wait for their own children.
OWN_PROCESS = {"pod/notifylisten.py": {"os.waitpid"}, "pod/tmux.py": {"subprocess."},
               "s6/clients.py": {"subprocess."}}  # s6-notifyoncheck's checker: a program of a service's
WAITPID_OWNER = "proc/reaper.py"


def test_no_module_of_ours_calls_waitpid_or_popen_wait_but_the_reaper():
    offenders = []
    for path in (REPO / "supervisor").rglob("*.py"):
        text = path.read_text()
        where = path.relative_to(REPO / "supervisor").as_posix()
        for needle in ("os.waitpid", "os.waitid", "os.wait(", ".wait4(", "subprocess.", "create_subprocess", "open_process"):
            if needle in text and where != WAITPID_OWNER and needle not in OWN_PROCESS.get(where, set()):
                offenders.append(f"{where}: {needle}")
    assert offenders == []


def test_the_programs_that_wait_are_never_imported_by_pyinit():
    loaded = modules_after_import("supervisor.root") | modules_after_import("supervisor.init")
    assert not {"supervisor.pod.notifylisten", "supervisor.pod.tmux"} & loaded


# The subpackages, and which others each may import: arrows point one way (down this table). The
# entry points at the root (init, root, __main__) may import anything; the root package itself
# ("", for __version__) is anyone's. Inside a package any module may import another, never in a circle.
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "proc": {"base"},
    "logs": {"base"},
    "core": {"base", "proc", "logs"},
    "control": {"base", "logs", "core"},
    "metrics": {"base", "logs", "core"},
    "s6": {"base", "logs", "core", "control"},  # control's client side only: see CLIENT_MAY_IMPORT
    "container": {"base", "proc", "logs", "core", "s6"},
    "cron": {"base", "proc", "logs", "metrics"},
    "pod": {"base"},
}
ENTRY_POINTS = {"", "__main__", "init", "root"}
# What a client (a fresh process at every call, standard library only) may load of ours.
CLIENT_MODULES = {"control.client", "control.svstat", "control.watch", "control.svc", "s6.commands", "s6.clients", "s6.logger"}
CLIENT_MAY_IMPORT = {"", "base", "base.terms", "base.files", "base.paths", "base.links", "base.environ", "base.cli",
                     "base.s6getopt", "base.tai64", "control", "control.client", "control.protocol",
                     "control.statusfmt", "control.svstat", "control.watch", "control.svc", "s6", "s6.contenv", "s6.commands", "logs",
                     "logs.logdir"}


def _package(module: str) -> str:
    return module.split(".")[0] if "." in module else ("" if module in ENTRY_POINTS else module)


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
            found.update(c for c in candidates if c in MODULES)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("supervisor."):
                    name = alias.name.removeprefix("supervisor.")
                    if name in MODULES:
                        found.add(name)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    found.discard(module)
    return found


MODULES = {_module_name(p) for p in (REPO / "supervisor").rglob("*.py")}


def _graph() -> dict[str, set[str]]:
    return {_module_name(path): _imports(path) for path in (REPO / "supervisor").rglob("*.py")}


def test_the_root_holds_only_the_entry_points_and_every_other_module_a_package():
    at_root = {m for m in MODULES if "." not in m} - set(ALLOWED)
    assert at_root == ENTRY_POINTS
    assert {_package(m) for m in MODULES} - ENTRY_POINTS <= set(ALLOWED)


def test_each_package_init_is_its_docstring_alone():
    for package in ALLOWED:
        tree = ast.parse((REPO / "supervisor" / package / "__init__.py").read_text())
        assert len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr), package
        assert isinstance(tree.body[0].value, ast.Constant) and isinstance(tree.body[0].value.value, str), package


def test_imports_between_packages_follow_the_table():
    against = sorted(f"{m} -> {d}" for m, deps in _graph().items() for d in deps
                     if _package(m) not in ENTRY_POINTS and _package(d) not in ("", _package(m))
                     and _package(d) not in ALLOWED[_package(m)])
    assert against == []


def test_the_table_has_no_circle():
    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})) for nxt in ALLOWED[start])

    assert [p for p in ALLOWED if reaches(p, p, {p})] == []


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
